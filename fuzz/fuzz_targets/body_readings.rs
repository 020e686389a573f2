//! See `airlock_fuzz::body_readings` (fuzz/src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airlock_fuzz::body_readings(data));
