//! `dlm import`: checkpoints from other codebases as ordinary dlm model directories.
//! `dlm import diffusionllm` reads the paper's authors' released checkpoints
//! (`dlm_train::import_diffusionllm`).

use dlm_train::{ImportRequest, import_diffusionllm};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImportCommand,
}

#[derive(clap::Subcommand)]
enum ImportCommand {
    /// The DiffusionLLM authors' checkpoints (Ye et al. 2023: flan_v2.*.length and the
    /// task-finetuned ones): backbone, MLM head, length predictor and, for task checkpoints,
    /// the vocabulary map of their fairseq dictionary
    #[command(name = "diffusionllm")]
    DiffusionLlm(DiffusionLlmArgs),
}

#[derive(clap::Args)]
struct DiffusionLlmArgs {
    /// The checkpoint: a folder with pytorch_model.bin, or a DeepSpeed ZeRO-2 folder
    /// (global_step*/mp_rank_00_model_states.pt; the step in `latest`, else the highest),
    /// or one of those files
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// The pretrained model it was trained from (their --pretrained, e.g. xlm-roberta-large):
    /// a directory with its config.json and tokenizer files
    #[arg(long, value_name = "XLMR_DIR")]
    base: PathBuf,
    /// The new model directory (created; must be empty if it exists)
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// The fairseq dictionary a task checkpoint was vocabulary-pruned with (the dict.txt of
    /// its fairseq-preprocessed data); writes the matching vocab_map.json
    #[arg(long, value_name = "dict.txt")]
    dict: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ImportCommand::DiffusionLlm(a) => {
            let req = ImportRequest {
                checkpoint: a.checkpoint,
                base: a.base,
                out: a.out,
                dict: a.dict,
            };
            let s = import_diffusionllm(&req)?;
            println!(
                "imported {} into {}: vocabulary {}{}, decoder {}, {}",
                s.weights_file.display(),
                req.out.display(),
                s.vocab_size,
                if s.pruned {
                    " (pruned, vocab_map.json written)"
                } else {
                    ""
                },
                if s.tied { "tied" } else { "untied" },
                if s.length_predictor {
                    "length predictor written"
                } else {
                    "no length predictor"
                },
            );
            Ok(())
        }
    }
}
