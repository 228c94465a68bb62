//! aws-chunked and event-stream re-signing over arbitrary client bytes: no panics, a
//! bounded output, the same result for any split of the input, and an accepted body
//! keeps its length (signatures are replaced in place).
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use excalibur_core::Secret;
use excalibur_mediation::sigv4::{
    ChunkResigner, Credentials, EventResigner, Reframe, Scope, SignatureChain,
};
use libfuzzer_sys::fuzz_target;

fn chain() -> SignatureChain {
    let creds = Credentials::new(
        "AKIDEXAMPLE".to_owned(),
        Secret::new(b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_vec()),
        None,
    );
    let scope = Scope {
        region: "us-east-1",
        service: "s3",
    };
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    SignatureChain::new(&creds, scope, t, "0".repeat(64)).expect("chain")
}

fn run(r: &mut dyn Reframe, input: &[u8], step: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for piece in input.chunks(step.max(1)) {
        r.push(piece, &mut out).ok()?;
    }
    r.finish(&mut out).ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(mode >> 2) + 1;
    let make = |m: u8| -> Box<dyn Reframe> {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        match m & 3 {
            0 => Box::new(ChunkResigner::new(chain(), false, 4096)),
            1 => Box::new(ChunkResigner::new(chain(), true, 4096)),
            _ => Box::new(EventResigner::new(
                chain(),
                Box::new(move || -> SystemTime { t }),
            )),
        }
    };
    let whole = run(make(mode).as_mut(), body, body.len());
    let split = run(make(mode).as_mut(), body, step);
    assert_eq!(
        whole, split,
        "the result depends on how the input was split"
    );
    if let Some(out) = whole {
        assert_eq!(out.len(), body.len(), "an accepted body changed length");
    }
});
