//! Istio's AuthorizationPolicy → RBAC test cases give the same allow/deny decisions through
//! Mast (issue 6): for every case (istio/istio `pilot/pkg/security/authz/builder/testdata`,
//! the pairs in `mast-xds/tests/authz_testdata/` plus those in `authz_decisions/testdata/`,
//! origin in its README; `*-derived` pairs are Istio's files with contradicting values and
//! exactly their matchers removed, so that rules Istio wrote never to match can decide),
//! Istio's input is loaded as a user's file, mastd's generator
//! (`mast_xds::authz`) builds the filters for a sidecar `httpbin` (`app: httpbin, version:
//! v1`) in `foo`, Istio's golden filters are read from YAML into the protos
//! (`mast_xds_json`), and both are converted into mast-proxy's RBAC engine. Each sample
//! request (HTTP) or connection (TCP) then gets:
//! - the same decision from Mast's filters and from Istio's golden filters (allowed,
//!   denied, allowed-and-logged, through the whole chain in order), and the same set of
//!   matching policies (each policy evaluated on its own, rules and shadow rules);
//! - the decision Istio's semantics give, written by hand in `authz_decisions/cases.rs`, so
//!   the test cannot pass with both sides wrong.
//!
//! Istio-only inputs: older golden files match `istio_authn` dynamic metadata
//! (`request.auth.principal`, `source.principal`), which Istio's own authn filter wrote and
//! upstream Envoy never does. Every sample carries both that metadata and the
//! `jwt_authn` payload Mast reads, derived from the same token and peer certificate (see
//! `authz_decisions/sample.rs`), so no sample is skipped for it. Golden files matching the
//! `istio_authn` *filter state* (`filterState`, which mast-proxy refuses) are not used: the
//! `deny-and-allow` ALLOW filter is Istio's `extended-` variant (`authenticated` principals).
//! Network RBAC sees no dynamic metadata, as in Envoy, so `experimental.envoy.filters.*`
//! conditions never match on TCP.
//!
//! Known differences are listed in [`EXPECTED_MISMATCH`]: for those samples the test asserts
//! that Mast's decision DIFFERS from Istio's (and that Istio's is the expected one).

#[path = "authz_decisions/cases.rs"]
mod cases;
#[path = "authz_decisions/sample.rs"]
mod sample;

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::rbac::v3::{Policy, Rbac as RbacRules};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbacProto;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbacProto;
use envoy_types::pb::google::protobuf::Any;
use mast_model::{MeshSnapshot, ProxyNode, SnapshotOptions};
use mast_proxy::rbac::{Engine, HTTP_RBAC_TYPE, HttpRbac, NETWORK_RBAC_TYPE, NetworkRbac};
use prost::Message;
use serde_json::json;

use cases::{Case, Proto};
use sample::{Sample, Verdict};

/// `(case, sample, why)`: samples where Mast's decision is known to differ from Istio's.
/// (None today: the `istio.io/dry-run` case, once listed here, now decides as Istio does.)
const EXPECTED_MISMATCH: &[(&str, &str, &str)] = &[];

fn read(rel: &str) -> String {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One RBAC filter as mast-proxy runs it, plus an engine per policy (rules and shadow
/// rules) to tell which policies a sample matches.
struct Filter {
    kind: Kind,
    policies: Vec<(String, Engine)>,
}

enum Kind {
    Http(HttpRbac),
    Tcp(NetworkRbac),
}

impl Filter {
    fn from_any(label: &str, any: &Any) -> Self {
        let (kind, sets) = match any.type_url.as_str() {
            HTTP_RBAC_TYPE => {
                let p = HttpRbacProto::decode(any.value.as_slice()).expect("HTTP RBAC");
                let f =
                    HttpRbac::from_any(any).unwrap_or_else(|e| panic!("{label}: {} {}", e.0, e.1));
                (Kind::Http(f), [p.rules, p.shadow_rules])
            }
            NETWORK_RBAC_TYPE => {
                let p = NetworkRbacProto::decode(any.value.as_slice()).expect("network RBAC");
                let f = NetworkRbac::from_any(any)
                    .unwrap_or_else(|e| panic!("{label}: {} {}", e.0, e.1));
                (Kind::Tcp(f), [p.rules, p.shadow_rules])
            }
            other => panic!("{label}: unexpected filter type {other}"),
        };
        let policies = sets
            .into_iter()
            .flatten()
            .flat_map(|r| r.policies.into_iter())
            .map(|(name, p)| {
                let e = single(label, &name, p);
                (name, e)
            })
            .collect();
        Filter { kind, policies }
    }
}

/// An ALLOW engine holding only `p`: allowed exactly when `p` matches.
fn single(label: &str, name: &str, p: Policy) -> Engine {
    let rules = RbacRules {
        policies: [(name.to_owned(), p)].into_iter().collect(),
        ..Default::default()
    };
    Engine::from_proto("rules", &rules)
        .unwrap_or_else(|e| panic!("{label}: policy {name}: {} {}", e.0, e.1))
}

/// What a filter chain did with a sample.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    verdict: Verdict,
    matched: BTreeSet<String>,
}

fn run(chain: &[Filter], s: &Sample) -> Outcome {
    let mut allowed = true;
    let mut logged = false;
    let mut matched = BTreeSet::new();
    for f in chain {
        let (ok, log_hint) = match &f.kind {
            Kind::Http(h) => s.http(|subject| {
                let c = h.check(subject);
                (c.enforced.allowed, c.log_hint)
            }),
            Kind::Tcp(n) => {
                let c = n.check_connection(&s.conn());
                (c.enforced.allowed, c.log_hint)
            }
        };
        // Filters run in order; the first denial ends the chain.
        if allowed {
            logged |= log_hint;
            allowed = ok;
        }
        for (name, e) in &f.policies {
            let hit = match f.kind {
                Kind::Http(_) => s.http(|subject| e.evaluate(subject).allowed),
                Kind::Tcp(_) => s.tcp(|subject| e.evaluate(subject).allowed),
            };
            if hit {
                matched.insert(name.clone());
            }
        }
    }
    let verdict = match (allowed, logged) {
        (false, _) => Verdict::Deny,
        (true, true) => Verdict::Log,
        (true, false) => Verdict::Allow,
    };
    Outcome { verdict, matched }
}

fn httpbin() -> ProxyNode {
    let meta = json!({ "NAMESPACE": "foo", "LABELS": { "app": "httpbin", "version": "v1" } });
    ProxyNode::parse(
        "sidecar~10.0.0.1~httpbin-1.foo~foo.svc.cluster.local",
        &meta,
    )
    .expect("proxy")
}

/// Mast's filters for the case's input.
fn ours(case: &Case) -> Vec<Filter> {
    let out = mast_config::load_str(&read(&case.input), &case.input, &Default::default());
    let errors: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.level == mast_config::Level::Error)
        .collect();
    assert!(errors.is_empty(), "{}: {errors:?}", case.input);
    let snap = MeshSnapshot::build(&out.resources, SnapshotOptions::default(), 1);
    let label = format!("{} (Mast)", case.name);
    match case.proto {
        Proto::Http => mast_xds::authz::inbound_http_filters(&snap, &httpbin(), 80)
            .iter()
            .map(|f| {
                assert_eq!(f.name, "envoy.filters.http.rbac", "{label}");
                let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    panic!("{label}: typed config");
                };
                Filter::from_any(&label, any)
            })
            .collect(),
        Proto::Tcp => mast_xds::authz::inbound_network_filters(&snap, &httpbin(), 80)
            .iter()
            .map(|f| {
                assert_eq!(f.name, "envoy.filters.network.rbac", "{label}");
                let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    panic!("{label}: typed config");
                };
                Filter::from_any(&label, any)
            })
            .collect(),
    }
}

/// Istio's golden filters, read as they are (no normalisation: deprecated fields such as
/// `googleRe2` and the header matchers' `exactMatch` are still in the protos).
fn golden(case: &Case) -> Vec<Filter> {
    let name = match case.proto {
        Proto::Http => "envoy.filters.http.rbac",
        Proto::Tcp => "envoy.filters.network.rbac",
    };
    case.golden
        .iter()
        .map(|rel| {
            let text = read(rel);
            let docs = mast_config::yaml::parse_documents(&text);
            let doc = docs[0].as_ref().unwrap_or_else(|e| panic!("{rel}: {e:?}"));
            assert_eq!(doc.value["name"], name, "{rel}");
            let any = mast_xds_json::any_from_json(&doc.value["typedConfig"])
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            Filter::from_any(rel, &any)
        })
        .collect()
}

fn check_case(case: &Case, failures: &mut Vec<String>, seen: &mut BTreeSet<(String, String)>) {
    let ours = ours(case);
    let golden = golden(case);
    for s in &case.samples {
        let o = run(&ours, s);
        let g = run(&golden, s);
        let at = format!("{} / {}", case.name, s.name);
        if g.verdict != s.want {
            failures.push(format!(
                "{at}: Istio's golden filter gives {:?}, Istio's semantics {:?}",
                g.verdict, s.want
            ));
        }
        let known = EXPECTED_MISMATCH
            .iter()
            .find(|(c, n, _)| *c == case.name && *n == s.name);
        match known {
            None if o != g => failures.push(format!("{at}: Mast {o:?}, Istio {g:?}")),
            None => {}
            Some((_, _, why)) => {
                seen.insert((case.name.to_owned(), s.name.to_owned()));
                if o.verdict == g.verdict {
                    failures.push(format!("{at}: listed as a mismatch ({why}) but agrees"));
                }
            }
        }
    }
}

#[test]
fn istio_cases_decide_the_same_through_mast() {
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for case in cases::all() {
        check_case(&case, &mut failures, &mut seen);
    }
    for (c, n, _) in EXPECTED_MISMATCH {
        if !seen.contains(&((*c).to_owned(), (*n).to_owned())) {
            failures.push(format!("{c} / {n}: listed as a mismatch but not a sample"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cases_cover_the_brief() {
    let all = cases::all();
    assert!(all.len() >= 15, "{} cases", all.len());
    let mut wants = BTreeSet::new();
    for case in &all {
        assert!(!case.samples.is_empty(), "{}: no samples", case.name);
        let names: BTreeSet<_> = case.samples.iter().map(|s| s.name).collect();
        assert_eq!(
            names.len(),
            case.samples.len(),
            "{}: duplicate names",
            case.name
        );
        wants.extend(case.samples.iter().map(|s| format!("{:?}", s.want)));
    }
    assert!(all.iter().any(|c| c.proto == Proto::Tcp));
    assert_eq!(wants.len(), 3, "allow, deny and log samples: {wants:?}");
}
