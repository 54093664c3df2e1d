//! Fuzzes the label parser: any label map, global or not, parses without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_policy::fuzzing::labels(data));
