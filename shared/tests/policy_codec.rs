//! Reading and writing policies: bounds, error paths and round trips.

use shared::policy::{MAX_DOCUMENT_BYTES, MAX_NESTING_DEPTH, ParseError, Policy};

const HEADER_YAML: &str =
    "service:\n  name: svc\n  environment: prod\n  owner: team\n  risk_tier: low\n";
const HEADER_JSON: &str =
    r#"{"service":{"name":"svc","environment":"prod","owner":"team","risk_tier":"low"}"#;

fn yaml_error(extra: &str) -> ParseError {
    Policy::from_yaml(&format!("{HEADER_YAML}{extra}")).expect_err("should not parse")
}

fn json_error(extra: &str) -> ParseError {
    Policy::from_json(&format!("{HEADER_JSON}{extra}}}")).expect_err("should not parse")
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let e = yaml_error("retry:\n  model:\n    max_atempts: 3\n");
    assert_eq!(e.path(), Some("retry.model.max_atempts"));
    assert!(e.to_string().contains("unknown field `max_atempts`"), "{e}");

    let e = json_error(
        r#","breakers":{"m":{"mode":{"kind":"consecutive","failures":1,"extra":2},"cooldown_ms":1,"half_open_probes":1}}"#,
    );
    assert_eq!(e.path(), Some("breakers.m.mode.extra"));

    let e = yaml_error(
        "fallbacks:\n  - component: a\n    failure: any\n    fallback: { kind: refuse, target: x }\n    degraded_status: refused\n    allowed: true\n",
    );
    assert_eq!(e.path(), Some("fallbacks.0.fallback.target"));

    let e = Policy::from_yaml(&HEADER_YAML.replace("owner: team", "owner: team\n  ownr: x"))
        .unwrap_err();
    assert_eq!(e.path(), Some("service.ownr"));
}

#[test]
fn wrong_types_and_values_name_their_path() {
    let e = yaml_error("timeouts:\n  total_ms: -5\n");
    assert_eq!(e.path(), Some("timeouts.total_ms"));
    match &e {
        ParseError::Invalid { line, column, .. } => {
            assert_eq!(*line, Some(7));
            assert!(column.is_some());
        }
        other => panic!("{other:?}"),
    }
    let e = json_error(
        r#","retry":{"m":{"max_attempts":2,"base_delay_ms":1,"max_delay_ms":1,"jitter":"sometimes"}}"#,
    );
    assert_eq!(e.path(), Some("retry.m.jitter"));
    let e = yaml_error(
        "admission:\n  triggers:\n    - id: t\n      signal: { kind: breaker_open, dependency: x }\n      modes: { vip: rejected }\n",
    );
    assert_eq!(e.path(), Some("admission.triggers.0.modes"));
    let e = Policy::from_yaml(
        "service:\n  name: svc\n  environment: prod\n  owner: team\n  risk_tier: extreme\n",
    )
    .unwrap_err();
    assert_eq!(e.path(), Some("service.risk_tier"));
}

#[test]
fn missing_header_is_rejected() {
    let e = Policy::from_json("{}").unwrap_err();
    assert!(e.to_string().contains("missing field `service`"), "{e}");
    assert!(Policy::from_yaml("").is_err());
}

#[test]
fn duplicate_keys_are_rejected_in_both_formats() {
    let e = yaml_error(
        "breakers:\n  m: &b\n    mode: { kind: consecutive, failures: 1 }\n    cooldown_ms: 1\n    half_open_probes: 1\n  m: *b\n",
    );
    assert_eq!(e.path(), Some("breakers.m"), "{e}");
    let e = json_error(r#","timeouts":{"total_ms":10,"dependencies":{"a":1,"a":2}}"#);
    assert_eq!(e.path(), Some("timeouts.dependencies.a"), "{e}");
}

#[test]
fn trailing_input_is_rejected() {
    let e = Policy::from_json(&format!("{HEADER_JSON}}} {{}}")).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
}

#[test]
fn oversized_documents_are_rejected_before_parsing() {
    let text = format!("{HEADER_YAML}#{}\n", "x".repeat(MAX_DOCUMENT_BYTES));
    assert!(matches!(
        Policy::from_yaml(&text),
        Err(ParseError::TooLarge { .. })
    ));
    let text = format!("{HEADER_JSON}}}{}", " ".repeat(MAX_DOCUMENT_BYTES));
    assert!(matches!(
        Policy::from_json(&text),
        Err(ParseError::TooLarge { .. })
    ));
}

#[test]
fn deeply_nested_documents_are_rejected_before_parsing() {
    let deep = MAX_NESTING_DEPTH + 1;
    let json = format!(r#"{{"service":{}{}}}"#, "[".repeat(deep), "]".repeat(deep));
    assert!(matches!(
        Policy::from_json(&json),
        Err(ParseError::TooDeep { .. })
    ));

    let flow = format!("service: {}{}\n", "[".repeat(deep), "]".repeat(deep));
    assert!(matches!(
        Policy::from_yaml(&flow),
        Err(ParseError::TooDeep { .. })
    ));

    let mut block = String::from("service:\n");
    for level in 1..=deep {
        block.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
    }
    assert!(matches!(
        Policy::from_yaml(&block),
        Err(ParseError::TooDeep { .. })
    ));

    // A JSON bomb far past any parser's own recursion limit is refused
    // quickly rather than overflowing the stack.
    let bomb = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        Policy::from_json(&bomb),
        Err(ParseError::TooDeep { .. })
    ));
}

#[test]
fn header_only_documents_round_trip() {
    let p = Policy::from_yaml(HEADER_YAML).unwrap();
    assert_eq!(Policy::from_json(&format!("{HEADER_JSON}}}")).unwrap(), p);
    assert_eq!(Policy::from_yaml(&p.to_yaml().unwrap()).unwrap(), p);
    assert_eq!(Policy::from_json(&p.to_json().unwrap()).unwrap(), p);
    // Absent sections stay absent rather than being written out empty.
    assert_eq!(p.to_yaml().unwrap(), HEADER_YAML);
}

#[test]
fn alias_bombs_are_refused() {
    // Each level multiplies ten-fold; buffered into a tagged enum, the last
    // level would expand to 10^9 nodes without the YAML parser's own
    // repetition limit.
    let mut text = String::from(HEADER_YAML);
    text.push_str("fallbacks:\n  - component: a\n    failure: any\n    degraded_status: refused\n    allowed: true\n    fallback:\n      kind: refuse\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let prev = level - 1;
        text.push_str(&format!(
            "      l{level}: &l{level} [*l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}, *l{prev}]\n"
        ));
    }
    let started = std::time::Instant::now();
    assert!(Policy::from_yaml(&text).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
