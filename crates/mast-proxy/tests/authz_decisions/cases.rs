//! The Istio cases (input policies, golden filters) and, for each, the sample requests or
//! connections with the decision Istio's semantics give them. Sample defaults: see
//! [`super::sample::req`] (GET `/` from 10.0.0.5 to 10.0.0.1:8000, plaintext).

use super::sample::{Sample, req};

/// Which filter the case is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `envoy.filters.http.rbac` on an inbound HTTP chain.
    Http,
    /// `envoy.filters.network.rbac` on an inbound TCP chain.
    Tcp,
}

/// One Istio test case.
pub struct Case {
    /// File name stem.
    pub name: &'static str,
    /// HTTP or TCP.
    pub proto: Proto,
    /// Istio's input, relative to the crate root.
    pub input: String,
    /// Istio's golden filters in chain order, relative to the crate root.
    pub golden: Vec<String>,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// The pairs `mast-xds/tests/authz_golden.rs` compares structurally.
const XDS: &str = "../mast-xds/tests/authz_testdata";
/// The pairs copied for this test (origin in its README).
const OURS: &str = "tests/authz_decisions/testdata";

fn case(dir: &str, name: &'static str, proto: Proto, samples: Vec<Sample>) -> Case {
    Case {
        name,
        proto,
        input: format!("{dir}/{name}-in.yaml"),
        golden: vec![format!("{dir}/{name}-out.yaml")],
        samples,
    }
}

const SLEEP: &str = "spiffe://cluster.local/ns/foo/sa/sleep";

/// Every case.
pub fn all() -> Vec<Case> {
    let mut v = vec![
        allow_path(),
        case(XDS, "http-allow-empty-rule", Proto::Http, everyone(true)),
        case(XDS, "http-deny-empty-rule", Proto::Http, everyone(false)),
        case(XDS, "http-allow-nil-rule", Proto::Http, everyone(false)),
        deny_and_allow(),
        tcp_allow_both(),
        tcp_allow_only_http(),
        tcp_deny_both(),
        multiple_policies(),
        single_policy(),
        allow_host(),
        audit_full_rule(),
        principal_wildcard(),
        tcp_audit_both(),
        td_aliases_source_principal(),
        dry_run_allow(),
        allow_path_derived(),
        allow_host_derived(),
        single_policy_derived(),
        tcp_audit_derived(),
    ];
    v.sort_by_key(|c| c.name);
    v
}

/// Plaintext, mTLS and odd-source samples, all allowed or all denied.
fn everyone(allowed: bool) -> Vec<Sample> {
    let v = [
        req("plaintext GET"),
        req("mTLS POST").method("POST").mtls(SLEEP),
        req("other source and port").from("9.9.9.9").port(9999),
    ];
    v.into_iter()
        .map(|s| if allowed { s.allow() } else { s.deny() })
        .collect()
}

/// `notPaths: [.., "*"]` excludes every path, so the only rule never matches.
fn allow_path() -> Case {
    let samples = vec![
        req("exact path").path("/exact").deny(),
        req("prefix path").path("/prefix/a").deny(),
        req("suffix path").path("/a/suffix").deny(),
        req("excluded exact path").path("/not-exact").deny(),
    ];
    case(XDS, "http-allow-path", Proto::Http, samples)
}

/// DENY `spiffe://deny`, then ALLOW only `spiffe://allow`. Istio's ALLOW golden is the
/// `extended-` variant (upstream `authenticated`, not the `istio_authn` filter state).
fn deny_and_allow() -> Case {
    let samples = vec![
        req("allowed principal").mtls("spiffe://allow").allow(),
        req("denied principal").mtls("spiffe://deny").deny(),
        req("both SANs: DENY wins")
            .mtls("spiffe://allow")
            .mtls("spiffe://deny")
            .deny(),
        req("other principal").mtls(SLEEP).deny(),
        req("plaintext").deny(),
    ];
    let mut c = case(XDS, "http-deny-and-allow", Proto::Http, samples);
    c.golden
        .push(format!("{OURS}/http-deny-and-allow-out2.yaml"));
    c
}

const NS1: &str = "spiffe://cluster.local/ns/ns-1/sa/a";

/// Only rule[3] (`namespaces: ns-1`, `ports: 80`) has no HTTP-only field.
fn tcp_allow_both() -> Case {
    let samples = vec![
        req("ns-1 to 80").mtls(NS1).port(80).allow(),
        req("ns-1 to 8080 (HTTP rule dropped)")
            .mtls(NS1)
            .port(8080)
            .deny(),
        req("ns-2 to 9090 (HTTP rule dropped)")
            .mtls("spiffe://cluster.local/ns/ns-2/sa/a")
            .port(9090)
            .deny(),
        req("ns-10 to 80")
            .mtls("spiffe://cluster.local/ns/ns-10/sa/a")
            .port(80)
            .deny(),
        req("plaintext to 80").port(80).deny(),
    ];
    case(XDS, "tcp-allow-both-http-tcp", Proto::Tcp, samples)
}

/// Every rule has an HTTP-only field: the ALLOW policy has no rule left, so all is denied.
fn tcp_allow_only_http() -> Case {
    let samples = vec![
        req("ns-1 to 80").mtls(NS1).port(80).deny(),
        req("plaintext").deny(),
    ];
    case(XDS, "tcp-allow-only-http", Proto::Tcp, samples)
}

/// rule[1] (`methods` only) loses its HTTP field and matches every connection.
fn tcp_deny_both() -> Case {
    let samples = vec![
        req("ns-1 to 80").mtls(NS1).port(80).deny(),
        req("plaintext to 9999").port(9999).deny(),
        req("from 1.2.3.4").from("1.2.3.4").deny(),
    ];
    case(XDS, "tcp-deny-both-http-tcp", Proto::Tcp, samples)
}

/// Nine ALLOW policies, one field each; the base sample (PUT /other to 8000) matches none.
fn multiple_policies() -> Case {
    let put = |n| req(n).method("PUT").path("/other");
    let samples = vec![
        put("matches nothing").deny(),
        put("GET").method("GET").allow(),
        put("POST").method("POST").allow(),
        put("path /v1").path("/v1").allow(),
        put("path /v1/x").path("/v1/x").deny(),
        put("host, any case").host("Google.com").allow(),
        put("host suffix").host("google.com.evil").deny(),
        put("port 90").port(90).allow(),
        put("principal").mtls("spiffe://principals1").allow(),
        put("namespace")
            .mtls("spiffe://cluster.local/ns/namespaces2/sa/x")
            .allow(),
        put("other namespace")
            .mtls("spiffe://cluster.local/ns/namespaces3/sa/x")
            .deny(),
        put("request principal").jwt("requestPrincipals1").allow(),
        put("other request principal").jwt("https://other/x").deny(),
        put("ip block").from("5.6.7.9").allow(),
        put("outside ip block").from("5.6.8.1").deny(),
        put("ipBlocks read the peer, not x-forwarded-for")
            .xff("1.2.3.4")
            .deny(),
        put("header").header("X-abc", "abc2").allow(),
        put("other header value").header("x-abc", "abc3").deny(),
        put("repeated header joined with ,")
            .header("x-abc", "abc1")
            .header("x-abc", "abc3")
            .deny(),
    ];
    case(OURS, "http-multiple-policies", Proto::Http, samples)
}

/// rule[1] from[0] to[0] without the token.
fn rule1_no_token() -> Sample {
    req("rule[1] from[0] to[0]")
        .method("rule[1]-to[0]-method[1]")
        .host("rule[1]-to[0]-host[1]")
        .path("rule[1]-to[0]-path[1]")
        .to("10.0.0.1:9101")
        .from("10.1.0.1")
        .xff("172.22.3.7")
        .mtls("spiffe://rule[1]-from[0]-principal[1]")
        // Istio's namespace regex `.*/ns/rule[1]-from[0]-ns[1]/.*` is unescaped: `[1]` is
        // a character class, so this SAN is the one it matches.
        .mtls("spiffe://cluster.local/ns/rule1-from0-ns1/sa/x")
}

/// rule[1] from[0] to[0], everything matching.
fn rule1() -> Sample {
    rule1_no_token().jwt("rule[1]-from[0]-requestPrincipal[2]")
}

/// Two rules with two sources and two operations each; rule[0] can never match (its
/// `remoteIpBlocks` and `remote.ip` condition are disjoint).
fn single_policy() -> Case {
    let samples = vec![
        rule1().allow(),
        rule1()
            .named("peer outside ipBlocks")
            .from("10.1.0.3")
            .deny(),
        rule1_no_token().named("no token").deny(),
        rule1().named("port outside ports").port(9103).deny(),
        rule1()
            .named("to[0] method with to[1] host")
            .host("rule[1]-to[1]-host[1]")
            .deny(),
        rule1()
            .named("rule[1] from[0] to[1]")
            .method("rule[1]-to[1]-method[1]")
            .host("rule[1]-to[1]-host[2]")
            .path("rule[1]-to[1]-path[2]")
            .port(9112)
            .allow(),
        rule1()
            .named("x-forwarded-for outside remoteIpBlocks")
            .xff("172.22.4.1")
            .deny(),
        rule1()
            .named("from[1] ipBlock with from[0] identity")
            .from("10.1.1.1")
            .deny(),
        rule0()
            .named("rule[0] with its remoteIpBlocks")
            .xff("172.16.10.10")
            .deny(),
        rule0()
            .named("rule[0] with its remote.ip")
            .xff("10.99.10.8")
            .deny(),
    ];
    case(OURS, "http-single-policy", Proto::Http, samples)
}

/// rule[0] from[0] to[0] with its `when` conditions.
fn rule0() -> Sample {
    req("rule[0]")
        .method("rule[0]-to[0]-method[1]")
        .host("rule[0]-to[0]-host[1]")
        .path("rule[0]-to[0]-path[1]")
        .to("10.10.10.10:9001")
        .from("10.0.0.1")
        .mtls("spiffe://rule[0]-from[0]-principal[1]")
        .mtls("spiffe://cluster.local/ns/rule0-from0-ns1/sa/x")
        .jwt("rule[0]-from[0]-requestPrincipal[1]")
        .header("X-header", "header")
}

/// `notHosts: [.., "*"]` excludes every host.
fn allow_host() -> Case {
    let samples = vec![
        req("exact host").host("example.com").deny(),
        req("suffix host").host("a.example.com").deny(),
        req("other host").host("other.org").deny(),
    ];
    case(OURS, "http-allow-host-before-111", Proto::Http, samples)
}

/// AUDIT everything: allowed and logged.
fn audit_full_rule() -> Case {
    let samples = vec![
        req("plaintext GET").log(),
        req("mTLS POST").method("POST").mtls(SLEEP).log(),
    ];
    case(OURS, "http-audit-full-rule", Proto::Http, samples)
}

/// `principals: ["*"]` in from[0]: any peer with an identity.
fn principal_wildcard() -> Case {
    let samples = vec![
        req("plaintext").deny(),
        req("TLS without a certificate").tls_without_cert().deny(),
        req("mTLS").mtls(SLEEP).allow(),
        req("alias trust domain")
            .mtls("spiffe://td1/ns/foo/sa/rule[0]-from[1]-principal[1]")
            .allow(),
    ];
    case(
        OURS,
        "http-simple-policy-principal-with-wildcard",
        Proto::Http,
        samples,
    )
}

/// AUDIT on TCP: rule[1] (`ipBlocks: 1.2.3.4`, `ports: 80`) logs; nothing is denied.
fn tcp_audit_both() -> Case {
    let samples = vec![
        req("1.2.3.4 to 80").from("1.2.3.4").port(80).log(),
        req("1.2.3.4 to 81").from("1.2.3.4").port(81).allow(),
        req("5.5.5.5 to 80").from("5.5.5.5").port(80).allow(),
        // rule[0] needs ports 80 and destination.port 91 at once (and metadata): never.
        req("rule[0]'s other TCP fields as well")
            .from("1.2.3.4")
            .to("10.10.10.10:80")
            .mtls("spiffe://principal")
            .sni("exact.com")
            .log(),
    ];
    case(OURS, "tcp-audit-both-http-tcp", Proto::Tcp, samples)
}

/// `namespaces: istio-system` and `source.principal` `*` (any peer identity).
fn td_aliases_source_principal() -> Case {
    let samples = vec![
        req("istio-system peer")
            .mtls("spiffe://cluster.local/ns/istio-system/sa/ingress")
            .allow(),
        req("alias trust domain")
            .mtls("spiffe://some-trustdomain/ns/istio-system/sa/prefix-td")
            .allow(),
        req("foo peer")
            .mtls("spiffe://cluster.local/ns/foo/sa/all-td")
            .deny(),
        req("plaintext").deny(),
    ];
    case(
        OURS,
        "http-td-aliases-source-principal",
        Proto::Http,
        samples,
    )
}

/// A dry-run ALLOW policy: only shadow rules, so nothing is enforced.
fn dry_run_allow() -> Case {
    let samples = vec![
        req("matching path").path("/exact").allow(),
        req("other path").path("/other").allow(),
    ];
    case(OURS, "http-dry-run-allow", Proto::Http, samples)
}

/// Paths without the `*` values: exact, prefix and suffix, and their `not` forms, decide.
fn allow_path_derived() -> Case {
    let samples = vec![
        req("exact").path("/exact").allow(),
        req("exact, query ignored")
            .path("/exact?x=/not-suffix")
            .allow(),
        req("exact plus slash").path("/exact/").deny(),
        req("prefix").path("/prefix/a").allow(),
        req("prefix without its slash").path("/prefix").deny(),
        req("suffix").path("/a/b/suffix").allow(),
        req("suffix alone").path("/suffix").allow(),
        req("no path value matches").path("/other").deny(),
        req("prefix, excluded by not-suffix")
            .path("/prefix/a/not-suffix")
            .deny(),
        req("suffix, excluded by not-prefix")
            .path("/not-prefix/x/suffix")
            .deny(),
        req("excluded exact only").path("/not-exact").deny(),
    ];
    case(OURS, "http-allow-path-derived", Proto::Http, samples)
}

/// Hosts without the `*` values: exact, prefix and suffix hosts (any case), and `notHosts`.
fn allow_host_derived() -> Case {
    let samples = vec![
        req("exact host").host("example.com").allow(),
        req("exact host, other case").host("EXAMPLE.com").allow(),
        req("prefix host").host("prefix.example.org").allow(),
        req("suffix host").host("a.example.com").allow(),
        req("bare suffix").host(".example.com").allow(),
        req("other host").host("other.org").deny(),
        req("longer exact").host("example.com.org").deny(),
        req("prefix, excluded by not-suffix")
            .host("prefix.example.not-example.com")
            .deny(),
        req("suffix, excluded by not-prefix")
            .host("prefix.not-example.example.com")
            .deny(),
    ];
    case(OURS, "http-allow-host-derived", Proto::Http, samples)
}

/// rule[0] from[0] to[0] of the derived single policy, all of its `when` conditions met.
fn rule0_derived() -> Sample {
    rule0()
        .named("rule[0] from[0] to[0] with its when")
        .xff("10.80.100.1")
}

/// rule[0] made reachable: its `when` conditions (`request.headers` with exact, prefix,
/// suffix and `*`, `destination.ip`, `remote.ip`) decide.
fn single_policy_derived() -> Case {
    let r = rule0_derived;
    let no_header = || {
        let mut s = r().named("X-header missing");
        s.clear_headers();
        s
    };
    let samples = vec![
        r().allow(),
        r().named("header prefix value")
            .header_only("X-header", "header-prefix-1")
            .allow(),
        r().named("header suffix value")
            .header_only("X-header", "a-suffix-header")
            .allow(),
        r().named("any header value (`*`)")
            .header_only("x-header", "anything")
            .allow(),
        no_header().deny(),
        r().named("destination.ip in 192.168.10.0/24")
            .to("192.168.10.7:9002")
            .allow(),
        r().named("destination.ip outside")
            .to("10.10.10.11:9001")
            .deny(),
        r().named("remote.ip exact").xff("10.99.10.8").allow(),
        r().named("remote.ip outside 10.80.64.0/18")
            .xff("10.80.128.1")
            .deny(),
        r().named("remote.ip is x-forwarded-for, not the peer")
            .from("10.0.0.1")
            .xff("10.0.0.1")
            .deny(),
        r().named("to[1] port with to[0] method").port(9011).deny(),
    ];
    case(OURS, "http-single-policy-derived", Proto::Http, samples)
}

/// AUDIT rule[0] made reachable on TCP: `source.ip`, `source.namespace`, `source.principal`,
/// `destination.ip`, `destination.port`, `connection.sni` and the `not` forms decide.
fn tcp_audit_derived() -> Case {
    let r = || {
        req("all conditions met")
            .from("10.10.10.10")
            .to("10.10.10.10:91")
            .mtls("spiffe://principal")
            .mtls("spiffe://cluster.local/ns/ns/sa/x")
            .sni("exact.com")
    };
    let samples = vec![
        r().log(),
        r().named("other source.ip").from("10.10.10.11").allow(),
        r().named("other destination.ip")
            .to("10.10.10.11:91")
            .allow(),
        r().named("other destination.port").port(92).allow(),
        r().named("other SNI").sni("other.com").allow(),
        r().named("excluded SNI").sni("not-exact.com").allow(),
        r().named("excluded principal as well")
            .mtls("spiffe://not-principal")
            .allow(),
        r().named("excluded namespace as well")
            .mtls("spiffe://cluster.local/ns/not-ns/sa/y")
            .allow(),
        req("plaintext")
            .from("10.10.10.10")
            .to("10.10.10.10:91")
            .allow(),
    ];
    case(OURS, "tcp-audit-derived", Proto::Tcp, samples)
}
