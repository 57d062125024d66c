//! `dlm`: diffusion language models from pretrained masked language models.
//! One subcommand per verb; each lives in its own module with its `Args` and `run`.

use clap::{Parser, Subcommand};

mod data;
mod demo;
mod eval;
mod fill_mask;
mod hub;
mod generate;
mod import;
mod inspect;
mod model_dir;
mod sampler_args;
mod score;
mod serve;
mod train;

#[derive(Parser)]
#[command(name = "dlm", version, about = "Diffusion language models from pretrained masked language models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: adapt a pretrained BERT into a diffusion LM on IWSLT14 De→En, then generate
    Demo(demo::Args),
    /// Show a model's architecture, parameter counts, vocabulary and special tokens
    Inspect(inspect::Args),
    /// Predict the tokens at mask positions
    FillMask(fill_mask::Args),
    /// Generate text by iterative unmasking
    Generate(generate::Args),
    /// Inspect datasets
    Data(data::Args),
    /// Score hypotheses against references (BLEU, chrF, ROUGE)
    Score(score::Args),
    /// Evaluate a model on a benchmark
    Eval(eval::Args),
    /// Adapt a masked LM into a diffusion LM by finetuning
    Train(train::Args),
    /// Convert another codebase's checkpoint into a dlm model directory
    Import(import::Args),
    /// Serve a model over an OpenAI-compatible HTTP API (streamed denoising, continuous batching)
    Serve(serve::Args),
}

#[global_allocator]
static ALLOC: dlm_models::allocator::KeepLarge = dlm_models::allocator::KeepLarge;

fn main() {
    // SAFETY: first thing in main: no thread has started, none reads the environment.
    let started = unsafe { dlm_models::kernels::start() };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs written to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = started.map_err(anyhow::Error::from).and_then(|_| run(cli.command));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Runs one subcommand; those that compute with a model first log the kernel level.
fn run(command: Command) -> anyhow::Result<()> {
    if matches!(command, Command::Demo(_) | Command::Generate(_) | Command::Eval(_) | Command::Train(_)) {
        tracing::info!("{}", dlm_models::kernels::system_report().summary());
    }
    match command {
        Command::Demo(a) => demo::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::FillMask(a) => fill_mask::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Data(a) => data::run(a),
        Command::Score(a) => score::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a),
        Command::Import(a) => import::run(a),
        Command::Serve(a) => serve::run(a),
    }
}
