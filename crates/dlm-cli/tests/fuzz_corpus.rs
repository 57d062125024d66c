//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and the regression inputs
//! of crashes found by fuzzing (`fuzz/artifacts/<target>/`) through the fuzz targets'
//! bodies, on the stable toolchain: every input must parse or fail with an error, never
//! panic. Fuzzing itself is `scripts/fuzz.sh` (docs/reliability.md).

#[path = "../../../fuzz/src/lib.rs"]
mod fuzzing;

use std::path::Path;

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_replays_without_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failures = Vec::new();
    for (name, body) in fuzzing::TARGETS {
        let seeds = files_in(&fuzz.join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seed inputs");
        let regressions = files_in(&fuzz.join("artifacts").join(name));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "fuzz inputs that panic: {failures:#?}");
}

#[test]
fn every_fuzz_target_has_a_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, _) in fuzzing::TARGETS {
        let bin = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
}
