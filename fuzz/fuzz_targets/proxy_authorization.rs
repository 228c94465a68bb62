//! `Proxy-Authorization` parsing and identification: no panics on any bytes.
#![no_main]

use excalibur_identity::{CredentialIndex, identify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let index = CredentialIndex::default();
    let _ = identify(&index, "10.0.0.1".parse().expect("ip"), Some(data), 0);
});
