//! `security.istio.io` (v1beta1, v1): PeerAuthentication, AuthorizationPolicy and
//! RequestAuthentication specs. Both API versions share one schema.

pub mod authorization_policy;
pub mod peer_authentication;
pub mod request_authentication;

pub use authorization_policy::AuthorizationPolicy;
pub use peer_authentication::PeerAuthentication;
pub use request_authentication::RequestAuthentication;
