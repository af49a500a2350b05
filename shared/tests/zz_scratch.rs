use shared::policy::*;
#[test]
fn scratch() {
    let base = "service:\n  name: a\n  environment: prod\n  owner: me\n  risk_tier: high\n";
    let cases = [
        format!("{base}  bogus: 1\n"),
        format!("{base}retry:\n  x:\n    max_attempts: 1\n    base_delay_ms: 1\n    max_delay_ms: 1\n    jitter: full\n    max_atempts: 3\n"),
        format!("{base}retry:\n  x:\n    max_attempts: -1\n    base_delay_ms: 1\n    max_delay_ms: 1\n    jitter: full\n"),
        format!("{base}breakers:\n  x:\n    mode:\n      kind: consecutive\n      failures: 1\n      extra: 2\n    cooldown_ms: 1\n    half_open_probes: 1\n"),
        format!("{base}breakers:\n  x:\n    mode:\n      kind: consecutive\n      failures: x\n    cooldown_ms: 1\n    half_open_probes: 1\n"),
        format!("{base}fallbacks:\n  - component: a\n    failure: any\n    fallback: {{kind: refuse, x: 1}}\n    degraded_status: refused\n    allowed: true\n"),
        format!("{base}admission:\n  triggers:\n    - id: a\n      signal: {{kind: breaker_open, dependency: x}}\n      modes: {{vip: rejected}}\n"),
        format!("{base}retry:\n  x:\n    max_attempts: 1\n    base_delay_ms: 1\n    max_delay_ms: 1\n    jitter: full\n  x:\n    max_attempts: 1\n    base_delay_ms: 1\n    max_delay_ms: 1\n    jitter: full\n"),
        format!("{base}: : :"),
        "".to_string(),
    ];
    for c in &cases {
        match Policy::from_yaml(c) { Ok(_) => println!("OK"), Err(e) => println!("{e:?}\n  => {e}") }
    }
    let jcases = [
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"},"retry":{"x":{"max_attempts":1,"base_delay_ms":1,"max_delay_ms":1,"jitter":"full","nope":1}}}"#,
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"},"admission":{"triggers":[{"id":"a","signal":{"kind":"breaker_open","dependency":"x"},"modes":{"vip":"rejected"}}]}}"#,
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"},"admission":{"triggers":[{"id":"a","signal":{"kind":"breaker_open","dependency":"x"},"modes":{"batch_eval":"rejected"}}]}}"#,
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"},"retry":{"x":{},"x":{}}}"#,
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"}} x"#,
        r#"{"service":{"name":"a","environment":"p","owner":"o","risk_tier":"low"},"fallbacks":[{"component":"a","failure":"any","fallback":{"kind":"nope"},"degraded_status":"refused","allowed":true}]}"#,
    ];
    for c in &jcases {
        match Policy::from_json(c) { Ok(p) => println!("OK {}", p.to_yaml().unwrap()), Err(e) => println!("{e:?}\n  => {e}") }
    }
    let p = Policy::from_yaml(include_str!("../../examples/policies/rag-answer.yaml")).unwrap();
    println!("{}", &p.to_yaml().unwrap()[..1500]);
}
