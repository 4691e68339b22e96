//! Round trips of realistic `VirtualService`s (Istio documentation examples) in every
//! served API version: each loads, validates without errors or warnings, and serializes
//! back to the `spec` it was read from.

use crate::load::{LoadOptions, load_str};
use crate::validate::validate;
use crate::yaml::parse_documents;

/// Bookinfo `reviews`: a header match for one user, and an 80/20 split for the rest.
const REVIEWS: &str = r#"
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v3
      weight: 20
"#;

/// Fault injection, retries, a timeout, CORS, mirroring and header operations together.
const RATINGS: &str = r#"
metadata:
  name: ratings
  namespace: prod
spec:
  hosts:
  - ratings.prod.svc.cluster.local
  http:
  - name: ratings-route
    match:
    - name: get-ratings
      uri:
        prefix: /ratings
      method:
        exact: GET
      ignoreUriCase: true
      queryParams:
        version:
          regex: v[0-9]+
    fault:
      delay:
        percentage:
          value: 0.1
        fixedDelay: 5s
      abort:
        percentage:
          value: 10.0
        httpStatus: 400
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream,503
      retryRemoteLocalities: true
    timeout: 10s
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      - regex: https://.*\.example\.org
      allowMethods:
      - POST
      - GET
      allowCredentials: false
      allowHeaders:
      - X-Foo-Bar
      exposeHeaders:
      - X-Expose
      maxAge: 86400s
      unmatchedPreflights: IGNORE
    mirror:
      host: ratings-shadow
      subset: v2
      port:
        number: 9080
    mirrorPercentage:
      value: 50.0
    headers:
      request:
        set:
          x-request-source: mesh
      response:
        remove:
        - x-internal
    route:
    - destination:
        host: ratings.prod.svc.cluster.local
        subset: v1
      headers:
        request:
          add:
            x-version: v1
  - route:
    - destination:
        host: ratings.prod.svc.cluster.local
        subset: v1
"#;

/// SNI routing and TCP routing bound to a gateway and the mesh.
const TLS_TCP: &str = r#"
metadata:
  name: bookinfo-sni
  namespace: bookinfo
spec:
  hosts:
  - "*.bookinfo.com"
  gateways:
  - istio-system/mygateway
  - mesh
  tls:
  - match:
    - port: 443
      sniHosts:
      - login.bookinfo.com
    route:
    - destination:
        host: login.prod.svc.cluster.local
  - match:
    - port: 443
      sniHosts:
      - reviews.bookinfo.com
      destinationSubnets:
      - 10.1.0.0/16
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
  tcp:
  - match:
    - port: 27017
      sourceLabels:
        app: reviews
      gateways:
      - istio-system/mygateway
    route:
    - destination:
        host: mongo.backup.svc.cluster.local
        port:
          number: 5555
      weight: 100
  exportTo:
  - "."
"#;

/// A gateway-bound root with a redirect, a regex rewrite, a direct response, delegation
/// and several mirrors.
const ROOT: &str = r#"
metadata:
  name: bookinfo
  namespace: bookinfo
spec:
  hosts:
  - bookinfo.com
  gateways:
  - mygateway
  http:
  - match:
    - uri:
        exact: /v1/getProductRatings
    redirect:
      uri: /v1/bookRatings
      authority: newratings.default.svc.cluster.local
      redirectCode: 308
  - match:
    - uri:
        prefix: /old
    rewrite:
      uriRegexRewrite:
        match: ^/old/(.*)$
        rewrite: /new/\1
    route:
    - destination:
        host: productpage
  - match:
    - uri:
        exact: /healthz
    directResponse:
      status: 200
      body:
        string: ok
  - match:
    - uri:
        prefix: /productpage
    delegate:
      name: productpage
      namespace: nsa
  - match:
    - uri:
        prefix: /static
      scheme:
        exact: http
    redirect:
      scheme: https
      derivePort: FROM_PROTOCOL_DEFAULT
  - name: default
    mirrors:
    - destination:
        host: details-v2
      percentage:
        value: 25.0
    - destination:
        host: details-v3
    route:
    - destination:
        host: details
"#;

/// The delegate VirtualService the root above hands `/productpage` to.
const DELEGATE: &str = r#"
metadata:
  name: productpage
  namespace: nsa
spec:
  http:
  - match:
    - uri:
        prefix: /productpage/v1/
    route:
    - destination:
        host: productpage-v1.nsa.svc.cluster.local
  - route:
    - destination:
        host: productpage.nsa.svc.cluster.local
"#;

fn round_trip(body: &str, version: &str) {
    let text = format!("apiVersion: networking.istio.io/{version}\nkind: VirtualService{body}");
    let out = load_str(&text, "vs.yaml", &LoadOptions::default());
    assert!(
        out.diagnostics.is_empty(),
        "{version}: {:?}",
        out.diagnostics
    );
    let res = &out.resources[0];
    let report = validate(res);
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{version}: {report:#?}"
    );
    let spec = res.as_virtual_service().expect("a VirtualService");
    let want = parse_documents(&text)[0].as_ref().expect("parses").value["spec"].clone();
    assert_eq!(
        serde_json::to_value(spec).expect("serializes"),
        want,
        "{version}"
    );
}

#[test]
fn documentation_examples_round_trip_in_every_version() {
    for version in ["v1alpha3", "v1beta1", "v1"] {
        for body in [REVIEWS, RATINGS, TLS_TCP, ROOT, DELEGATE] {
            round_trip(body, version);
        }
    }
}

#[test]
fn typed_access_for_later_crates() {
    let text = format!("apiVersion: networking.istio.io/v1\nkind: VirtualService{REVIEWS}");
    let out = load_str(&text, "vs.yaml", &LoadOptions::default());
    let vs = out.resources[0]
        .as_virtual_service()
        .expect("a VirtualService");
    let split: Vec<_> = vs.http[1]
        .route
        .iter()
        .map(|d| (d.destination.subset.as_str(), d.weight))
        .collect();
    assert_eq!(split, [("v1", Some(80)), ("v3", Some(20))]);
    assert!(vs.http[0].r#match[0].headers["end-user"].matches("jason"));
}
