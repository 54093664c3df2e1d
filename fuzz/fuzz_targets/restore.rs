//! Fuzzes the restore path's archive names and manifests: what a target anyone may write
//! to can hold never panics dockhand, and never passes as another volume's archive.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dockhand_jobs::fuzzing::restore(data));
