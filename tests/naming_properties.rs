//! Properties of the naming rules that hold for every input (docs/go-service.md §3.4, docs/go-service.md §3.5).

use flytesecret::naming::{self, SecretId};
use proptest::prelude::*;

/// Components drawn to hit the interesting cases often: underscores, delimiter words, any char.
fn component() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z0-9.-]{1,4}",
        2 => prop::sample::select(vec!["_", "__", "___", "____"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["u", "org", "domain", "project", "key"]).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// First round-trip law: whatever decodes re-encodes to exactly the input.
    #[test]
    fn encode_after_decode_is_identity(o in component(), d in component(), p in component(), n in component(), noise in component()) {
        for s in [SecretId::new(&o, &d, &p, &n).encode().into_string(), noise] {
            if let Ok(id) = naming::decode(&s) {
                let again = id.encode().into_string();
                prop_assert_eq!(again, s);
            }
        }
    }

    /// Second law: decode(encode(x)) == x exactly when no scope component contains `__` or ends
    /// with `_`; otherwise decoding fails or yields another id (the encoding is not injective).
    #[test]
    fn decode_after_encode_round_trips_iff_components_are_clean(o in component(), d in component(), p in component(), n in component()) {
        let id = SecretId::new(&o, &d, &p, &n);
        let encoded = id.encode();
        let decoded = naming::decode(encoded.as_str());
        if id.round_trips() {
            prop_assert_eq!(decoded, Ok(id));
        } else {
            prop_assert_ne!(decoded, Ok(id));
        }
    }

    /// Names are unrestricted: any name round-trips under clean scope components.
    #[test]
    fn any_name_round_trips(name in any::<String>(), d in "[a-z0-9-]{0,8}", p in "[a-z0-9-]{0,8}") {
        let id = SecretId::new("flyte", &d, &p, &name);
        let encoded = id.encode();
        prop_assert_eq!(naming::decode(encoded.as_str()), Ok(id));
    }

    /// Object names are always valid Kubernetes names: 32 lowercase hex characters.
    #[test]
    fn object_names_are_lowercase_hex(s in any::<String>()) {
        let name = naming::object_name(&s);
        prop_assert_eq!(name.len(), 32);
        prop_assert!(name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}

#[test]
fn non_injective_pairs_share_one_object() {
    // docs/go-service.md §3.5: two ids, one Secret; decoding yields the second spelling.
    let a = SecretId::new("flyte", "d", "p__key__x", "n");
    let b = SecretId::new("flyte", "d", "p", "x__key__n");
    assert_eq!(a.encode(), b.encode());
    assert_eq!(
        a.encode().object_name().as_str(),
        "b4dd5b8d6fd4cd91aa4885e2f2a44ef9"
    );
    let encoded = a.encode();
    assert_eq!(naming::decode(encoded.as_str()), Ok(b));
    assert!(!a.round_trips() && b.round_trips());

    let c = SecretId::new("flyte", "a__project__b", "c", "n");
    let d = SecretId::new("flyte", "a", "b__project__c", "n");
    assert_eq!(c.encode(), d.encode());
    let encoded = c.encode();
    assert_eq!(
        naming::decode(encoded.as_str()),
        Err(naming::DecodeError::UnexpectedParts)
    );
}
