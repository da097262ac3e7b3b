//! Bodies that are not a decodable object give the right `DecodeError` and never panic.

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use kubeport_protobuf::{decode, DecodeError, MAGIC};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Real kubectl 1.32 bodies (see tests/kubectl/README.md); Ingress is not a supported kind.
const CAPTURES: &[&str] = &[
    "create-namespace",
    "create-service-nodeport",
    "create-service-clusterip",
    "create-deployment",
    "create-configmap",
    "create-secret-generic",
    "create-job-from-cronjob",
    "debug-copy-to",
    "create-ingress",
];

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/kubectl/{name}.pb",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn envelope(type_meta: Option<TypeMeta>, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta,
        raw: Some(raw),
        ..Default::default()
    };
    [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
}

fn type_meta(api_version: &str, kind: &str) -> Option<TypeMeta> {
    Some(TypeMeta {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
    })
}

fn malformed(body: &[u8]) -> String {
    match decode(body) {
        Err(DecodeError::Malformed(message)) => message,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn bad_magic() {
    for body in [
        &br#"{"kind":"Namespace","apiVersion":"v1"}"#[..],
        b"k8s",
        b"k8s\x01\x0a\x00",
        b"\0",
    ] {
        let err = decode(body).unwrap_err();
        assert_eq!(err, DecodeError::BadMagic);
        assert_eq!(
            err.to_string(),
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        );
    }
}

#[test]
fn empty_bodies() {
    assert_eq!(malformed(b""), "empty data");
    assert_eq!(malformed(&MAGIC), "empty body");
    assert_eq!(
        decode(&MAGIC).unwrap_err().to_string(),
        "malformed protobuf body: empty body"
    );
}

#[test]
fn envelope_without_kind() {
    assert_eq!(
        malformed(&envelope(None, vec![])),
        "the envelope's typeMeta has no kind"
    );
    assert_eq!(
        malformed(&envelope(type_meta("v1", ""), vec![])),
        "the envelope's typeMeta has no kind"
    );
}

#[test]
fn unknown_kinds() {
    for (api_version, kind) in [
        ("v1", "Widget"),
        ("apps/v1", "Namespace"),
        ("", "Service"),
        ("v2", "Pod"),
    ] {
        let err = decode(&envelope(type_meta(api_version, kind), vec![])).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedKind {
                api_version: api_version.into(),
                kind: kind.into()
            }
        );
    }
    assert_eq!(
        decode(&envelope(type_meta("v1", "Widget"), vec![]))
            .unwrap_err()
            .to_string(),
        r#"no kind "Widget" is registered for version "v1""#
    );
}

#[test]
fn truncated_bodies() {
    for name in CAPTURES.iter().filter(|name| **name != "create-ingress") {
        let body = capture(name);
        let full = decode(&body);
        let full_json = full.as_ref().unwrap();
        let bare =
            serde_json::json!({"kind": full_json["kind"], "apiVersion": full_json["apiVersion"]});
        for len in 0..body.len() {
            let result = decode(&body[..len]);
            // A cut at a field boundary is a valid, shorter envelope: right after typeMeta it
            // has no `raw` (an empty object, as in Go); after `raw` only the optional
            // contentEncoding/contentType (4 bytes) are missing.
            if result.as_ref().is_ok_and(|json| *json == bare)
                || (len + 4 >= body.len() && result == full)
            {
                continue;
            }
            assert!(
                matches!(
                    result,
                    Err(DecodeError::Malformed(_) | DecodeError::BadMagic)
                ),
                "{name} cut to {len} bytes: {result:?}"
            );
        }
    }
    let message = malformed(&capture("create-service-nodeport")[..40]);
    assert!(
        message.starts_with("envelope (runtime.Unknown): failed to decode Protobuf message"),
        "{message}"
    );
}

#[test]
fn object_that_is_not_its_message() {
    // raw holds a field 1 (metadata) whose length runs past the end.
    let message = malformed(&envelope(
        type_meta("v1", "Service"),
        vec![0x0a, 0x05, 0x0a],
    ));
    assert!(
        message.starts_with("v1 Service: failed to decode Protobuf message"),
        "{message}"
    );
    // Wrong wire type for ServiceSpec.ports.
    let message = malformed(&envelope(
        type_meta("v1", "Service"),
        vec![0x12, 0x02, 0x08, 0x01],
    ));
    assert!(
        message.starts_with("v1 Service: failed to decode Protobuf message"),
        "{message}"
    );
}

#[test]
fn values_without_a_json_form() {
    let service = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(5),
                    int_val: None,
                    str_val: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        malformed(&envelope(
            type_meta("v1", "Service"),
            service.encode_to_vec()
        )),
        "IntOrString has type 5; only 0 (int) and 1 (string) exist"
    );
}

/// Random bytes and random damage to real bodies: any result, but no panic.
#[test]
fn fuzz_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x6b38_7300);
    for _ in 0..3000 {
        let len = rng.random_range(0..200);
        let mut body = MAGIC.to_vec();
        body.extend((0..len).map(|_| rng.random::<u8>()));
        let _ = decode(&body);
    }
    let captures: Vec<Vec<u8>> = CAPTURES.iter().map(|name| capture(name)).collect();
    for round in 0..6000 {
        let mut body = captures[round % captures.len()].clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(MAGIC.len()..body.len());
            match rng.random_range(0..3) {
                0 => body[at] ^= 1 << rng.random_range(0..8),
                1 => body[at] = rng.random(),
                _ => {
                    body.remove(at);
                }
            }
        }
        let _ = decode(&body);
    }
}
