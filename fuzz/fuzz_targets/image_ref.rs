//! Fuzzes image references and the image rule.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_policy::fuzzing::image_ref(data));
