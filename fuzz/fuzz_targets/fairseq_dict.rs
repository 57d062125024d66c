#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dlm_fuzz::fairseq_dict(data));
