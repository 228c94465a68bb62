use excalibur_core::api::{CreateTranslationRule, Provider, TranslationRule};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::RuleId;
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_policy::{Policy, PolicyInput, RedeemTarget, Subject};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::*;

fn mediator() -> Arc<Mediator> {
    Arc::new(Mediator::new(vec![
        (
            "XCALIBUR_GITHUB_TOKEN".into(),
            Secret::new(b"ghp_realvalue_1234567890".to_vec()),
        ),
        (
            "XCALIBUR_STRIPE_KEY".into(),
            Secret::new(b"sk_live_abc".to_vec()),
        ),
    ]))
}

fn permit(names: &[&str]) -> Permit {
    let providers = vec![Provider {
        id: "p".into(),
        hosts: vec!["api.example.com".into()],
        passthrough: false,
        dangerous_allow_plaintext: false,
    }];
    let rules = vec![TranslationRule {
        id: RuleId::new("r"),
        rule: CreateTranslationRule {
            principal: "*".into(),
            placeholder: "*".into(),
            hosts: vec!["api.example.com".into()],
            path_prefix: "/".into(),
            methods: vec![],
            substitute_body: true,
        },
        created_at: String::new(),
    }];
    let bindings: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.to_string(), "p".to_owned()))
        .collect();
    let egress = [(
        "service:x".to_owned(),
        vec![HostPattern::parse("api.example.com").unwrap()],
    )];
    let policy = Policy::compile(PolicyInput {
        rules: &rules,
        providers: &providers,
        placeholders: &bindings,
        egress: &egress,
        namespaces: &[],
        operator: &[],
        allowed_ports: &[443],
    })
    .unwrap();
    let principal = Principal {
        id: "service:x".into(),
        kind: PrincipalKind::ServiceCredential,
        user: "x".into(),
        namespace: String::new(),
        groups: Vec::new(),
        attestation: "service_credential".into(),
        factors: Vec::new(),
        credential_id: None,
        source: "127.0.0.1".parse().unwrap(),
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    };
    let found: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    policy
        .decide_redeem(
            &Subject::new(&principal),
            RedeemTarget::tls("api.example.com", "/", "GET"),
            &found,
        )
        .unwrap()
}

#[test]
fn finds_literal_and_encoded() {
    let m = mediator();
    let check = |input: &str, literal: &[&str], encoded: &[&str]| {
        let mut a = BTreeSet::new();
        m.find(input.as_bytes(), &mut a);
        let mut b = BTreeSet::new();
        m.find_encoded(input.as_bytes(), &mut b);
        assert_eq!(
            a.iter().map(String::as_str).collect::<Vec<_>>(),
            literal,
            "literal in {input}"
        );
        assert_eq!(
            b.iter().map(String::as_str).collect::<Vec<_>>(),
            encoded,
            "encoded in {input}"
        );
    };
    check(
        "Bearer XCALIBUR_GITHUB_TOKEN",
        &["XCALIBUR_GITHUB_TOKEN"],
        &[],
    );
    check("nothing here", &[], &[]);
    check("q=%58CALIBUR_STRIPE_KEY", &[], &["XCALIBUR_STRIPE_KEY"]);
    for prefix in ["", "u:", "us:"] {
        let b64 = STANDARD_NO_PAD.encode(format!("{prefix}XCALIBUR_GITHUB_TOKEN"));
        check(&format!("Basic {b64}"), &[], &["XCALIBUR_GITHUB_TOKEN"]);
        let b64 = URL_SAFE_NO_PAD.encode(format!("{prefix}XCALIBUR_STRIPE_KEY?>"));
        check(&b64, &[], &["XCALIBUR_STRIPE_KEY"]);
    }
}

#[test]
fn substitutes_only_permitted_and_scrubs_back() {
    let m = mediator();
    let input = b"a XCALIBUR_GITHUB_TOKEN b XCALIBUR_STRIPE_KEY c";
    let out = m
        .substitute(&permit(&["XCALIBUR_GITHUB_TOKEN"]), input)
        .unwrap();
    assert_eq!(out, b"a ghp_realvalue_1234567890 b XCALIBUR_STRIPE_KEY c");
    assert_eq!(m.scrub(&out).unwrap(), input);
    assert!(m.substitute(&permit(&[]), input).is_none());
    assert!(m.scrub(b"clean").is_none());
}

#[test]
fn streaming_equals_whole_for_every_chunking() {
    let m = mediator();
    let p = permit(&["XCALIBUR_GITHUB_TOKEN", "XCALIBUR_STRIPE_KEY"]);
    let inputs: &[&[u8]] = &[
        b"XCALIBUR_GITHUB_TOKENXCALIBUR_STRIPE_KEY",
        b"{\"k\":\"XCALIBUR_STRIPE_KEY\",\"t\":\"XCALIBUR_GITHUB_TOKEN\"} tail XCALIBUR_GITHUB_TOKE",
        b"XXCALIBUR_STRIPE_KEYY",
        b"",
    ];
    for input in inputs {
        let whole = m.substitute(&p, input).unwrap_or_else(|| input.to_vec());
        let whole_scrubbed = m.scrub(&whole).unwrap_or_else(|| whole.clone());
        assert_eq!(&whole_scrubbed, input, "scrub(substitute(x)) == x");
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let mut s = m.body_substituter(p.clone());
                let mut got = Vec::new();
                for chunk in [&input[..a], &input[a..b], &input[b..]] {
                    got.extend(s.push(chunk));
                }
                got.extend(s.finish());
                assert_eq!(got, whole, "substitute split at {a},{b}");

                let mut sc = m.body_scrubber();
                let mut back = Vec::new();
                let (x, y) = (a.min(whole.len()), b.min(whole.len()));
                for chunk in [&whole[..x], &whole[x..y], &whole[y..]] {
                    back.extend(sc.push(chunk));
                }
                back.extend(sc.finish());
                assert_eq!(&back, input, "scrub split at {x},{y}");
            }
        }
    }
}

/// The next snapshot's mediator: unchanged pairs give the same one; a rotation keeps
/// the automata, substitutes the new value and scrubs it (in `recent`), and still
/// scrubs the values that did not change; a new name builds everything again.
#[test]
fn rebuild_reuses_what_did_not_change_and_serves_the_rotated_value() {
    let first = mediator();
    let same = Mediator::rebuild(
        &first,
        vec![
            (
                "XCALIBUR_GITHUB_TOKEN".into(),
                Secret::new(b"ghp_realvalue_1234567890".to_vec()),
            ),
            (
                "XCALIBUR_STRIPE_KEY".into(),
                Secret::new(b"sk_live_abc".to_vec()),
            ),
        ],
    );
    assert!(Arc::ptr_eq(&first, &same.main));
    assert!(same.recent.is_empty());
    let rotated = Mediator::rebuild(
        &first,
        vec![
            (
                "XCALIBUR_GITHUB_TOKEN".into(),
                Secret::new(b"ghp_rotated_value_0987654321".to_vec()),
            ),
            (
                "XCALIBUR_STRIPE_KEY".into(),
                Secret::new(b"sk_live_abc".to_vec()),
            ),
        ],
    );
    assert!(!Arc::ptr_eq(&first, &rotated.main));
    let p = permit(&["XCALIBUR_GITHUB_TOKEN", "XCALIBUR_STRIPE_KEY"]);
    assert_eq!(
        rotated
            .main
            .substitute(&p, b"Bearer XCALIBUR_GITHUB_TOKEN")
            .unwrap(),
        b"Bearer ghp_rotated_value_0987654321"
    );
    assert_eq!(
        rotated
            .main
            .scrub(
                &rotated
                    .recent
                    .scrub(b"echo ghp_rotated_value_0987654321 and sk_live_abc")
                    .unwrap()
            )
            .unwrap(),
        b"echo XCALIBUR_GITHUB_TOKEN and XCALIBUR_STRIPE_KEY"
    );
    let mut found = BTreeSet::new();
    rotated.main.find(b"x XCALIBUR_STRIPE_KEY y", &mut found);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["XCALIBUR_STRIPE_KEY"]
    );
    let grown = Mediator::rebuild(
        &rotated.main,
        vec![
            (
                "XCALIBUR_A".into(),
                Secret::new(b"value_of_a_0001".to_vec()),
            ),
            (
                "XCALIBUR_GITHUB_TOKEN".into(),
                Secret::new(b"ghp_rotated_value_0987654321".to_vec()),
            ),
        ],
    );
    assert_eq!(grown.main.len(), 2);
    assert!(grown.recent.is_empty());
    let mut found = BTreeSet::new();
    grown
        .main
        .find(b"XCALIBUR_A and XCALIBUR_STRIPE_KEY", &mut found);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["XCALIBUR_A"]);
}

/// Rotations keep the scrub automata and put the new values in `recent`; past
/// MAX_RECENT rotated values everything is rebuilt and `recent` is empty again.
#[test]
fn rotations_are_scrubbed_by_the_recent_layer_until_a_full_rebuild() {
    let pairs = |n: usize, version: usize| -> Vec<(String, Secret)> {
        (0..n)
            .map(|i| {
                let value = if i < version {
                    format!("rotated_value_{i:04}_v2")
                } else {
                    format!("original_value_{i:04}")
                };
                (format!("XCALIBUR_P{i:04}"), Secret::new(value.into_bytes()))
            })
            .collect()
    };
    let n = MAX_RECENT + 10;
    let base = Arc::new(Mediator::new(pairs(n, 0)));
    let r = Mediator::rebuild(&base, pairs(n, 3));
    assert!(
        Arc::ptr_eq(&r.main.scrub, &base.scrub),
        "scrub automata kept"
    );
    assert_eq!(r.recent.len(), 3);
    // The main mediator substitutes the new value; the recent one scrubs it.
    let p = permit(&["XCALIBUR_P0001"]);
    assert_eq!(
        r.main.substitute(&p, b"XCALIBUR_P0001").unwrap(),
        b"rotated_value_0001_v2"
    );
    assert_eq!(
        r.recent.scrub(b"got rotated_value_0001_v2").unwrap(),
        b"got XCALIBUR_P0001"
    );
    assert!(r.recent.leaks_folded(b"x-rotated_value_0001_v2"));
    assert_eq!(
        r.main.scrub(b"got original_value_0050").unwrap(),
        b"got XCALIBUR_P0050"
    );
    // A later rotation keeps the earlier ones in `recent`.
    let r2 = Mediator::rebuild(&r.main, pairs(n, 5));
    assert_eq!(r2.recent.len(), 5);
    assert!(r2.recent.scrub(b"rotated_value_0001_v2").is_some());
    // Past the bound: a full rebuild covers every current value itself.
    let r3 = Mediator::rebuild(&r2.main, pairs(n, MAX_RECENT + 1));
    assert!(r3.recent.is_empty());
    assert!(!Arc::ptr_eq(&r3.main.scrub, &base.scrub));
    assert_eq!(
        r3.main.scrub(b"rotated_value_0001_v2").unwrap(),
        b"XCALIBUR_P0001"
    );
}

/// `Mediator::rotate` (one placeholder's new value) shares the names, the base values
/// and every automaton with the mediator before it, serves every value as last
/// rotated, scrubs the new ones, and rebuilds the scrub automata only past
/// MAX_RECENT rotated placeholders.
#[test]
fn a_rotation_shares_all_but_the_value_and_every_value_stays_the_latest() {
    let n = MAX_RECENT + 20;
    let name = |i: usize| format!("XCALIBUR_P{i:04}");
    let value = |i: usize, v: usize| format!("value_{i:04}_version_{v:03}");
    let mut m = Arc::new(Mediator::new(
        (0..n)
            .map(|i| (name(i), Secret::new(value(i, 0).into_bytes())))
            .collect(),
    ));
    let base = Arc::clone(&m);
    assert!(Mediator::rotate(&m, "XCALIBUR_NOPE", &Secret::new(b"x".to_vec())).is_none());
    let mut latest = vec![0usize; n];
    let mut recent = Arc::new(Mediator::default());
    // The same placeholder many times, then one distinct placeholder after another.
    let order = std::iter::repeat_n(7, 3 * MAX_RECENT).chain(0..n);
    for (step, i) in order.enumerate() {
        latest[i] = step + 1;
        let r = Mediator::rotate(&m, &name(i), &Secret::new(value(i, step + 1).into_bytes()))
            .expect("a known placeholder");
        m = r.main;
        recent = r.recent;
        let echo = value(i, step + 1);
        let scrubbed = recent
            .scrub(echo.as_bytes())
            .or_else(|| m.scrub(echo.as_bytes()));
        assert_eq!(scrubbed.as_deref(), Some(name(i).as_bytes()), "step {step}");
    }
    let all: Vec<String> = (0..n).map(name).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let p = permit(&all);
    for (i, v) in latest.iter().enumerate() {
        let out = m.substitute(&p, name(i).as_bytes()).expect("substituted");
        assert_eq!(out, value(i, *v).as_bytes(), "placeholder {i}");
    }
    // Past MAX_RECENT distinct rotations the scrub automata were built again, over
    // the latest values; the names never changed, so neither did the name automata.
    assert!(!Arc::ptr_eq(&m.scrub, &base.scrub));
    assert!(recent.len() <= MAX_RECENT);
    assert_eq!(m.len(), n);
    // One more rotation shares the names and the scrub automata with the one before.
    let r = Mediator::rotate(&m, &name(3), &Secret::new(b"value_0003_final_one".to_vec()))
        .expect("a known placeholder");
    assert!(Arc::ptr_eq(&r.main.names, &m.names));
    assert!(Arc::ptr_eq(&r.main.values, &m.values));
    assert!(Arc::ptr_eq(&r.main.scrub, &m.scrub));
}

/// Placeholders added one by one join a tail: finding, substituting (whole and
/// streamed, at every split) and scrubbing (base, then tail) answer as one mediator
/// built over every pair would, with names that overlap across the two automata; the
/// base automata are shared; past MAX_TAIL everything is built again.
#[test]
fn an_added_placeholder_joins_the_tail_and_answers_as_one_built_whole() {
    let v = |s: &str| Secret::new(s.as_bytes().to_vec());
    let base_pairs = vec![
        ("XCALIBUR_A".to_owned(), v("value-of-a-0001")),
        ("XCALIBUR_S".to_owned(), v("value-of-s-0002")),
    ];
    let base = Arc::new(Mediator::new(base_pairs.clone()));
    let grown = Mediator::upsert(&base, "XCALIBUR_AB", &v("value-of-ab-003")).main;
    let grown = Mediator::upsert(&grown, "XCALIBUR_B", &v("old-b-value-04")).main;
    // A tail name rotates in the tail.
    let grown = Mediator::upsert(&grown, "XCALIBUR_B", &v("value-of-b-0004")).main;
    assert!(grown.find.is_some() && Arc::ptr_eq(&grown.scrub, &base.scrub));
    assert_eq!(grown.len(), 4);
    let mut all = base_pairs;
    all.push(("XCALIBUR_AB".to_owned(), v("value-of-ab-003")));
    all.push(("XCALIBUR_B".to_owned(), v("value-of-b-0004")));
    let whole = Mediator::new(all);
    let names = ["XCALIBUR_A", "XCALIBUR_S", "XCALIBUR_AB", "XCALIBUR_B"];
    let p = permit(&names);
    let only_tail = permit(&["XCALIBUR_AB"]);
    let inputs: &[&[u8]] = &[
        b"XCALIBUR_ABXCALIBUR_AXCALIBUR_BXCALIBUR_S",
        b"x XCALIBUR_A XCALIBUR_AB\"XCALIBUR_B\" XCALIBUR_ABC XCALIBUR_",
        b"only XCALIBUR_AB here",
        b"",
    ];
    let layers = |m: &Arc<Mediator>, x: &[u8]| {
        let once = m.scrub(x).unwrap_or_else(|| x.to_vec());
        match m.tail() {
            Some(t) => t.scrub(&once).unwrap_or(once),
            None => once,
        }
    };
    for input in inputs {
        for permit in [&p, &only_tail] {
            let want = whole.substitute(permit, input);
            assert_eq!(grown.substitute(permit, input), want);
            let want = want.unwrap_or_else(|| input.to_vec());
            if std::ptr::eq(permit, &p) {
                assert_eq!(&layers(&grown, &want), input, "scrubbed back");
            }
            for a in 0..=input.len() {
                for b in a..=input.len() {
                    let mut s = grown.body_substituter(permit.clone());
                    let mut got = Vec::new();
                    for chunk in [&input[..a], &input[a..b], &input[b..]] {
                        got.extend(s.push(chunk));
                    }
                    got.extend(s.finish());
                    assert_eq!(got, want, "split at {a},{b}");
                }
            }
        }
        let (mut x, mut y) = (BTreeSet::new(), BTreeSet::new());
        grown.find(input, &mut x);
        whole.find(input, &mut y);
        assert_eq!(x, y);
    }
    let encoded = STANDARD_NO_PAD.encode(b"XCALIBUR_AB");
    let (mut x, mut y) = (BTreeSet::new(), BTreeSet::new());
    grown.find_encoded(encoded.as_bytes(), &mut x);
    whole.find_encoded(encoded.as_bytes(), &mut y);
    assert!(x.contains("XCALIBUR_AB"));
    assert_eq!(x, y);
}

/// Past MAX_TAIL additions everything is built again, with every value.
#[test]
fn past_max_tail_additions_the_mediator_is_built_whole_again() {
    let v = |s: &str| Secret::new(s.as_bytes().to_vec());
    let base = Arc::new(Mediator::new(vec![(
        "XCALIBUR_B".to_owned(),
        v("value-of-b-0004"),
    )]));
    let mut m = Mediator::upsert(&base, "XCALIBUR_A", &v("value-of-a-0001")).main;
    let mut rebuilt = false;
    for i in 0..MAX_TAIL {
        m = Mediator::upsert(
            &m,
            &format!("XCALIBUR_N{i:04}"),
            &v(&format!("value-n-{i:08}")),
        )
        .main;
        rebuilt |= m.tail().is_none();
    }
    assert!(rebuilt && m.tail().is_none_or(|t| t.len() < 4));
    assert_eq!(m.len(), 2 + MAX_TAIL);
    let out = m.substitute(
        &permit(&["XCALIBUR_B", "XCALIBUR_N0007"]),
        b"XCALIBUR_B XCALIBUR_N0007",
    );
    assert_eq!(out.unwrap(), b"value-of-b-0004 value-n-00000007");
}

/// A removed placeholder, of the base automata or the tail, is never found (literally
/// or encoded) nor substituted, in one piece or streamed; its value is still scrubbed;
/// the others answer as before; created again, it is found again; a later build
/// leaves it out.
#[test]
fn a_removed_placeholder_is_never_found_nor_substituted() {
    let v = |s: &str| Secret::new(s.as_bytes().to_vec());
    let base = Arc::new(Mediator::new(vec![
        ("XCALIBUR_A".to_owned(), v("value-of-a-0001")),
        ("XCALIBUR_GONE".to_owned(), v("value-of-gone-02")),
    ]));
    let grown = Mediator::upsert(&base, "XCALIBUR_TAIL", &v("value-of-tail-03")).main;
    let gone = Mediator::remove(&grown, "XCALIBUR_GONE");
    let gone = Mediator::remove(&gone, "XCALIBUR_TAIL");
    assert_eq!(gone.len(), 1);
    let p = permit(&["XCALIBUR_A", "XCALIBUR_GONE", "XCALIBUR_TAIL"]);
    let input = b"a=XCALIBUR_A g=XCALIBUR_GONE t=XCALIBUR_TAIL";
    assert_eq!(
        gone.substitute(&p, input).as_deref(),
        Some(&b"a=value-of-a-0001 g=XCALIBUR_GONE t=XCALIBUR_TAIL"[..])
    );
    let mut found = BTreeSet::new();
    gone.find(input, &mut found);
    let b64 = base64::engine::general_purpose::STANDARD.encode("XCALIBUR_GONE XCALIBUR_TAIL");
    gone.find_encoded(
        format!("{b64} XCALIBUR%5FGONE XCALIBUR%5FTAIL").as_bytes(),
        &mut found,
    );
    assert_eq!(found, BTreeSet::from(["XCALIBUR_A".to_owned()]));
    // The grown mediator it came from still finds both.
    let mut before = BTreeSet::new();
    grown.find(input, &mut before);
    assert_eq!(before.len(), 3);
    let mut stream = gone.body_substituter(p.clone());
    let mut out = Vec::new();
    for chunk in input.chunks(7) {
        out.extend(stream.push(chunk));
    }
    out.extend(stream.finish());
    assert_eq!(out, b"a=value-of-a-0001 g=XCALIBUR_GONE t=XCALIBUR_TAIL");
    // Its value is still scrubbed (harmless until the next build).
    assert_eq!(
        gone.scrub(b"echo value-of-gone-02").as_deref(),
        Some(&b"echo XCALIBUR_GONE"[..])
    );
    // Created again, it is found again, with its new value.
    let back = Mediator::upsert(&gone, "XCALIBUR_GONE", &v("value-of-gone-04")).main;
    assert_eq!(
        back.substitute(&p, b"XCALIBUR_GONE").as_deref(),
        Some(&b"value-of-gone-04"[..])
    );
    assert_eq!(back.len(), 2);
    // A build over the survivors' pairs leaves the removed out.
    let mut survivors = gone.pairs();
    survivors.extend(gone.tail_pairs());
    assert_eq!(survivors.len(), 1);
    let rebuilt = Mediator::rebuild(&gone, survivors).main;
    let mut found = BTreeSet::new();
    rebuilt.find(input, &mut found);
    assert_eq!(found, BTreeSet::from(["XCALIBUR_A".to_owned()]));
}

/// Large chunks stream through without copies where nothing can match, and with the
/// same bytes as rewriting the whole stream at once where something does: a name or an
/// echo inside a chunk, across a boundary, or at the very end.
#[test]
fn big_chunks_pass_as_slices_and_rewrite_as_the_whole() {
    let m = mediator();
    let p = permit(&["XCALIBUR_GITHUB_TOKEN", "XCALIBUR_STRIPE_KEY"]);
    let filler = |n: usize| -> Vec<u8> {
        b"abcdefghijklmnopqrstuvw"
            .iter()
            .copied()
            .cycle()
            .take(n)
            .collect()
    };
    // Filler only: every piece but the held-back carry is a slice of its chunk.
    let mut sc = m.body_scrubber();
    let chunk = bytes::Bytes::from(filler(64 * 1024));
    let mut out = Vec::new();
    sc.push_bytes(chunk.clone(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].as_ptr(),
        chunk.as_ptr(),
        "the chunk itself, not a copy"
    );
    let second = bytes::Bytes::from(filler(64 * 1024));
    out.clear();
    sc.push_bytes(second.clone(), &mut out);
    assert_eq!(out.len(), 2, "the carry, then a slice of the chunk");
    assert_eq!(out[1].as_ptr(), second.as_ptr());
    let mut all: Vec<u8> = [chunk.to_vec(), second.to_vec()].concat();
    let mut got = Vec::new();
    let mut again = m.body_scrubber();
    for c in [&chunk, &second] {
        let mut pieces = Vec::new();
        again.push_bytes(c.clone(), &mut pieces);
        got.extend(pieces.concat());
    }
    got.extend(again.finish());
    assert_eq!(got, all);

    // A stream with names and echoes placed inside chunks, across boundaries and at
    // the end, cut into chunks of every size from small to larger than the window.
    let secret: &[u8] = b"ghp_realvalue_1234567890";
    let name: &[u8] = b"XCALIBUR_GITHUB_TOKEN";
    all = filler(5000);
    for (at, what) in [(10, secret), (2000, name), (4070, secret), (4990, name)] {
        all.splice(at..at, what.iter().copied());
    }
    all.extend_from_slice(secret);
    let scrub_whole = m.scrub(&all).unwrap();
    let sub_whole = m.substitute(&p, &all).unwrap();
    for size in [1, 7, 19, 20, 23, 64, 100, 1000, 4096, 10_000] {
        let mut sc = m.body_scrubber();
        let mut sub = m.body_substituter(p.clone());
        let (mut scrubbed, mut substituted) = (Vec::new(), Vec::new());
        for c in all.chunks(size) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            sc.push_bytes(bytes::Bytes::copy_from_slice(c), &mut a);
            sub.push_bytes(bytes::Bytes::copy_from_slice(c), &mut b);
            scrubbed.extend(a.concat());
            substituted.extend(b.concat());
        }
        scrubbed.extend(sc.finish());
        substituted.extend(sub.finish());
        assert_eq!(scrubbed, scrub_whole, "scrub in chunks of {size}");
        assert_eq!(substituted, sub_whole, "substitute in chunks of {size}");
        assert!(
            !scrubbed.windows(secret.len()).any(|w| w == secret),
            "no echo left in chunks of {size}"
        );
    }
}
