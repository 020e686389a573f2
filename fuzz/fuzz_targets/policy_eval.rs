//! See `airlock_fuzz::policy_eval` (fuzz/src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airlock_fuzz::policy_eval(data));
