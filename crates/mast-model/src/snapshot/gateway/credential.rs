//! `credentialName` parsing, as Istio's `credentials.ToResourceName` and `ParseResourceName`
//! (`pilot/pkg/model/credentials/resource.go`): a plain name or `kubernetes://[ns/]name`
//! (a Secret, in the proxy's namespace unless one is given), `kubernetes-gateway://ns/name`
//! (what the Gateway API conversion writes for a certificate in another namespace) and
//! `builtin://` (the gateway's own workload certificate). Who may read which Secret is the
//! translation's business (`mast-xds` `gateway/tls.rs`).

/// `credentialName` prefix of a Secret (Istio's `kubernetes://`): `kubernetes://<name>` in the
/// proxy's namespace, or `kubernetes://<namespace>/<name>`.
pub const KUBERNETES_SECRET_PREFIX: &str = "kubernetes://";
/// `credentialName` prefix the Gateway API conversion writes for a certificate in another
/// namespace (allowed by a ReferenceGrant): `kubernetes-gateway://<namespace>/<name>`.
pub const KUBERNETES_GATEWAY_SECRET_PREFIX: &str = "kubernetes-gateway://";
/// `credentialName` prefix naming the gateway's own workload certificate (Istio's
/// `builtin://`, served as SDS `default` with the mesh root `ROOTCA`).
pub const BUILTIN_SECRET_PREFIX: &str = "builtin://";

/// What a `credentialName` names, as Istio's `credentials.ToResourceName` and
/// `ParseResourceName` (`pilot/pkg/model/credentials/resource.go`) read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A Secret: `<name>` or `kubernetes://<name>` (the proxy's namespace), or
    /// `<namespace>/<name>`, `kubernetes://<namespace>/<name>`. Istio serves it only to
    /// proxies of that namespace.
    Secret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// `kubernetes-gateway://<namespace>/<name>`: a Secret a Gateway API `certificateRef`
    /// names; Istio serves it to a proxy in the Gateway's namespace when the Secret is there
    /// too or a ReferenceGrant allows the reference.
    GatewaySecret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// `builtin://…`: the gateway's own workload certificate.
    Builtin,
}

impl Credential {
    /// Parses a `credentialName` for a proxy in `proxy_namespace`; the error says what is
    /// wrong with it.
    pub fn parse(credential: &str, proxy_namespace: &str) -> Result<Credential, String> {
        if credential.starts_with(BUILTIN_SECRET_PREFIX) {
            return Ok(Credential::Builtin);
        }
        if let Some(rest) = credential.strip_prefix(KUBERNETES_GATEWAY_SECRET_PREFIX) {
            let mut parts = rest.split('/');
            let (ns, name) = (parts.next().unwrap_or(""), parts.next());
            let Some(name) = name else {
                return Err(format!(
                    "invalid credential {credential:?}: expected namespace and name"
                ));
            };
            if ns.is_empty() || name.is_empty() {
                return Err(format!(
                    "invalid credential {credential:?}: empty namespace or name"
                ));
            }
            return Ok(Credential::GatewaySecret {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
        }
        let rest = credential
            .strip_prefix(KUBERNETES_SECRET_PREFIX)
            .unwrap_or(credential);
        let mut parts = rest.split('/');
        let first = parts.next().unwrap_or("");
        let (ns, name) = match parts.next() {
            Some(name) => (first, name),
            None => (proxy_namespace, first),
        };
        if ns.is_empty() || name.is_empty() {
            return Err(format!(
                "invalid credential {credential:?}: empty namespace or name"
            ));
        }
        Ok(Credential::Secret {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The Secret's `(namespace, name)`; `None` for [`Credential::Builtin`].
    pub fn secret(&self) -> Option<(&str, &str)> {
        match self {
            Credential::Secret { namespace, name }
            | Credential::GatewaySecret { namespace, name } => Some((namespace, name)),
            Credential::Builtin => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ns: &str, name: &str) -> Credential {
        Credential::Secret {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn credential_names() {
        let ok = |c: &str| Credential::parse(c, "gw-ns").unwrap();
        assert_eq!(ok("cert"), secret("gw-ns", "cert"));
        assert_eq!(ok("kubernetes://cert"), secret("gw-ns", "cert"));
        assert_eq!(ok("kubernetes://other/cert"), secret("other", "cert"));
        assert_eq!(ok("other/cert"), secret("other", "cert"));
        assert_eq!(
            ok("kubernetes-gateway://certs/cert"),
            Credential::GatewaySecret {
                namespace: "certs".into(),
                name: "cert".into()
            }
        );
        assert_eq!(ok("builtin://"), Credential::Builtin);
        assert_eq!(ok("builtin://x").secret(), None);
        assert_eq!(ok("kubernetes-gateway://a/b").secret(), Some(("a", "b")));
        for bad in [
            "kubernetes-gateway://cert",
            "kubernetes-gateway:///cert",
            "kubernetes-gateway://ns/",
            "kubernetes://",
            "kubernetes://ns/",
        ] {
            let e = Credential::parse(bad, "gw-ns").unwrap_err();
            assert!(e.contains("invalid credential"), "{bad}: {e}");
        }
    }
}
