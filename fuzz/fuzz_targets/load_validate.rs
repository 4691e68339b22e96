//! Fuzz target: arbitrary bytes through YAML loading, per-resource validation and every
//! analyzer. Any panic is a bug: bad input must only ever produce diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let out = mast_config::load_str(text, "fuzz.yaml", &mast_config::LoadOptions::default());
    let _ = mast_config::validate::validate_all(&out.resources);
    let _ = mast_analyze::analyze(&out.resources, &out.diagnostics, &mast_analyze::Options::default());
});
