//! `dlm train`: finetune a masked LM into a diffusion LM (or the AR baseline, or a length
//! predictor) from a TOML run config (SPEC §7); `dlm train --resume RUN_DIR` continues a
//! run from its newest valid checkpoint; `dlm train plot RUN_DIR` draws its curves.
//! Ctrl-C finishes the current update, writes a checkpoint and exits 0.
//!
//! Started by `mpirun -np N` (a binary built with `--features mpi`), every rank runs this
//! command and the ranks train one model together (see docs/distributed.md); a failure on
//! one rank ends them all.

use anyhow::Context;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Run config (TOML; see configs/)
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Override a config value: section.key=value (repeatable), e.g. optimizer.lr=1e-4
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run directory for checkpoints, metrics and plots (default: runs/<config name>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its newest valid checkpoint
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Draw a run's training curves to RUN_DIR/curves.svg and curves.png
    Plot { run_dir: PathBuf },
}

fn install_ctrlc() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: aborting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "interrupt: finishing the current step and writing a checkpoint (Ctrl-C again to abort)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Action::Plot { run_dir }) = args.action {
        for p in dlm_train::plot::plot_run(&run_dir)? {
            println!("{}", p.display());
        }
        return Ok(());
    }
    let stop = install_ctrlc()?;
    let progress = std::io::stderr().is_terminal();
    let cfg = match (&args.resume, &args.config) {
        (Some(run_dir), _) => {
            dlm_train::RunConfig::load(&run_dir.join(dlm_train::trainer::RUN_CONFIG), &args.set)?
        }
        (None, Some(config)) => dlm_train::RunConfig::load(config, &args.set)?,
        (None, None) => anyhow::bail!("give --config FILE.toml or --resume RUN_DIR"),
    };
    let comm = dlm_train::collective::detect(&cfg.model.device)?;
    let result = match (&args.resume, &args.config) {
        (Some(run_dir), _) => {
            dlm_train::resume_on(run_dir, &args.set, stop, progress, comm.clone())
        }
        (_, config) => {
            let out = match (&args.out, config) {
                (Some(o), _) => o.clone(),
                (None, Some(c)) => PathBuf::from("runs").join(c.file_stem().unwrap_or_default()),
                (None, None) => PathBuf::from("runs/run"),
            };
            dlm_train::train_on(cfg, &out, stop, progress, comm.clone())
        }
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) if comm.world_size() > 1 => {
            // The other ranks may be waiting in a collective for this one: end them all.
            eprintln!(
                "error: rank {} of {}: {e}; ending every rank",
                comm.rank(),
                comm.world_size()
            );
            comm.abort(1)
        }
        Err(e) => return Err(e.into()),
    };
    if comm.rank() != 0 {
        return Ok(());
    }
    let ckpt = summary
        .last_checkpoint
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "none".into());
    if summary.world_size > 1 {
        println!(
            "{} ranks; optimizer state {:.1} MiB on rank 0",
            summary.world_size,
            summary.optimizer_bytes as f64 / (1 << 20) as f64
        );
    }
    println!(
        "{} at step {} ({} steps this run, {:.2} steps/s, {:.0} tokens/s); last loss {}; checkpoint {}",
        if summary.interrupted {
            "interrupted"
        } else {
            "finished"
        },
        summary.steps,
        summary.steps_this_run,
        summary.steps_per_s,
        summary.tokens_per_s,
        summary.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        ckpt
    );
    if let Some(best) = summary.best {
        println!("best validation at step {} ({:.4})", best.step, best.value);
    }
    Ok(())
}
