//! Route table tests: tables are written as Envoy JSON (read through `mast-xds-json`), then
//! converted and asked what a user would see: refusals with their field path, which route a
//! request selects, and what each per-route decision gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actions;
mod convert;
mod gateway_paths;
mod mastd;
mod matching;
mod policies;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Value, json};

use super::{Action, Forward, RequestHead, Route, RouteTable};
use crate::error::ConfigError;

/// A table from its JSON.
fn table(json: Value) -> Result<RouteTable, ConfigError> {
    let rc = mast_xds_json::json_to_message(&json).expect("valid RouteConfiguration JSON");
    RouteTable::from_proto(&rc)
}

/// A table with one catch-all virtual host holding `routes`.
fn routes(routes: Value) -> Result<RouteTable, ConfigError> {
    table(json!({
        "name": "t",
        "virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": routes}]
    }))
}

/// A table with a single route (`route` JSON).
fn one(route: Value) -> RouteTable {
    routes(json!([route])).unwrap()
}

/// The error of a table with a single route.
fn one_err(route: Value) -> ConfigError {
    routes(json!([route])).unwrap_err()
}

/// A route forwarding `prefix` to `cluster`, with extra `route` action fields.
fn fwd(prefix: &str, cluster: &str, extra: Value) -> Value {
    let mut action = json!({"cluster": cluster});
    merge(&mut action, extra);
    json!({"name": cluster, "match": {"prefix": prefix}, "route": action})
}

/// Shallow-merges the object `extra` into `base`.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
}

/// An owned request; [`Req::head`] borrows it as routing sees it.
struct Req {
    method: Method,
    scheme: String,
    authority: String,
    path: String,
    headers: HeaderMap,
}

impl Req {
    fn get(authority: &str, path: &str) -> Self {
        Req {
            method: Method::GET,
            scheme: "http".into(),
            authority: authority.into(),
            path: path.into(),
            headers: HeaderMap::new(),
        }
    }

    fn connect(authority: &str) -> Self {
        Req {
            method: Method::CONNECT,
            ..Req::get(authority, "")
        }
    }

    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }

    fn scheme(mut self, s: &str) -> Self {
        self.scheme = s.into();
        self
    }

    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
        self
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            scheme: &self.scheme,
            authority: &self.authority,
            path: &self.path,
            headers: &self.headers,
        }
    }
}

/// The name of the route `req` selects, if any.
fn selected(t: &RouteTable, req: &Req) -> Option<String> {
    t.select(&req.head()).map(|r| r.name.clone())
}

/// The forwarding action of a route.
fn forward(r: &Route) -> &Forward {
    match &r.action {
        Action::Forward(f) => f,
        other => panic!("route {} does not forward: {other:?}", r.name),
    }
}

/// The only route of a one-route table.
fn only(t: &RouteTable) -> &Route {
    &t.vhosts[0].routes[0]
}
