//! The admin documents that read the xDS cache: `/config_dump` (Envoy's JSON shape through
//! `mast_xds_json`, endpoints only with `?include_eds` as in Envoy, and the in-process SDS
//! secrets last as Envoy's `SecretsConfigDump`), `/clusters` (plain and
//! `?format=json`, the host list `mastctl proxy-config endpoint` reads) and `/server_info`.
//! Private keys in the dumped resources are redacted as Envoy does ([`super::redact`]).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::bootstrap::v3::{Admin, Bootstrap as PbBootstrap};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use mast_xds_json::DumpSection;
use prost::{Message as _, Name as _};
use serde_json::{Value, json};

use super::AdminState;
use crate::xds::{CLUSTER_TYPE, ENDPOINT_TYPE};

/// `/config_dump`: bootstrap (node, admin), clusters, endpoints (`include_eds`), listeners,
/// routes.
pub(super) fn config_dump(state: &AdminState, include_eds: bool) -> Result<Value, String> {
    let bootstrap = PbBootstrap {
        node: Some(state.xds.node().clone()),
        admin: Some(Admin {
            address: Some(socket(
                &state.bootstrap.admin.ip().to_string(),
                state.bootstrap.admin.port(),
            )),
            ..Admin::default()
        }),
        ..PbBootstrap::default()
    };
    let mut sections = vec![DumpSection {
        type_url: PbBootstrap::type_url(),
        version_info: String::new(),
        resources: vec![envoy_types::util::pack_any(bootstrap)],
    }];
    for t in state.xds.cache().types {
        if t.type_url == ENDPOINT_TYPE && !include_eds {
            continue;
        }
        sections.push(DumpSection {
            version_info: t.status.version.clone(),
            resources: t.resources.into_values().map(|r| r.value).collect(),
            type_url: t.type_url,
        });
    }
    let mut dump = mast_xds_json::config_dump(&sections).map_err(|e| e.to_string())?;
    super::redact::redact(&mut dump);
    let secrets = secrets_dump(crate::tls::SecretStore::global())?;
    if let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) {
        configs.push(secrets);
    }
    Ok(dump)
}

fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..SocketAddress::default()
        })),
    }
}

/// One host as `/clusters` shows it.
#[derive(Debug, Clone, PartialEq)]
struct Host {
    ip: String,
    port: u32,
    health: &'static str,
    weight: u32,
}

/// Every cluster with its hosts: from its EDS assignment, or its inline `load_assignment`.
fn hosts(state: &AdminState) -> BTreeMap<String, Vec<Host>> {
    let assignments: BTreeMap<String, ClusterLoadAssignment> = state
        .xds
        .resources(ENDPOINT_TYPE)
        .into_iter()
        .filter_map(|(name, r)| {
            Some((
                name,
                ClusterLoadAssignment::decode(r.value.value.as_slice()).ok()?,
            ))
        })
        .collect();
    let mut out = BTreeMap::new();
    for (name, r) in state.xds.resources(CLUSTER_TYPE) {
        let Ok(cluster) = Cluster::decode(r.value.value.as_slice()) else {
            continue;
        };
        let eds_name = cluster
            .eds_cluster_config
            .as_ref()
            .map(|c| c.service_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| name.clone());
        let assignment = cluster
            .load_assignment
            .as_ref()
            .or_else(|| assignments.get(&eds_name));
        out.insert(name, assignment.map(assignment_hosts).unwrap_or_default());
    }
    out
}

fn assignment_hosts(cla: &ClusterLoadAssignment) -> Vec<Host> {
    let mut out = Vec::new();
    for locality in &cla.endpoints {
        for lb in &locality.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                continue;
            };
            let Some(address::Address::SocketAddress(sa)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            let health = match HealthStatus::try_from(lb.health_status) {
                Ok(HealthStatus::Unknown) | Err(_) => "HEALTHY",
                Ok(h) => h.as_str_name(),
            };
            out.push(Host {
                ip: sa.address.clone(),
                port,
                health,
                weight: lb.load_balancing_weight.map_or(1, |w| w.value),
            });
        }
    }
    out
}

/// `/clusters?format=json` in Envoy's shape (`cluster_statuses[].host_statuses[]`).
pub(super) fn clusters_json(state: &AdminState) -> Value {
    if let Some(provider) = &state.clusters {
        return provider();
    }
    let statuses: Vec<Value> = hosts(state)
        .into_iter()
        .map(|(name, hosts)| {
            let hosts: Vec<Value> = hosts
                .iter()
                .map(|h| {
                    json!({
                        "address": {"socket_address": {"address": h.ip, "port_value": h.port}},
                        "health_status": {"eds_health_status": h.health},
                        "weight": h.weight,
                    })
                })
                .collect();
            json!({"name": name, "host_statuses": hosts})
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

/// Plain `/clusters`: `<cluster>::<ip>:<port>::health_flags::healthy` lines.
pub(super) fn clusters_plain(state: &AdminState) -> String {
    let json = clusters_json(state);
    let mut out = String::new();
    for c in json["cluster_statuses"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default();
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let sa = &h["address"]["socket_address"];
            let health = h["health_status"]["eds_health_status"]
                .as_str()
                .unwrap_or("HEALTHY");
            let flags = if health == "HEALTHY" {
                "healthy".to_owned()
            } else {
                format!("/eds_{}", health.to_ascii_lowercase())
            };
            out.push_str(&format!(
                "{name}::{}:{}::health_flags::{flags}\n",
                sa["address"].as_str().unwrap_or_default(),
                sa["port_value"]
            ));
        }
    }
    out
}

/// `/server_info`: version, state, uptime, node.
pub(super) fn server_info(state: &AdminState) -> Value {
    let node = mast_xds_json::message_to_json(state.xds.node()).unwrap_or(Value::Null);
    let uptime = state.started.elapsed().as_secs();
    json!({
        "version": format!("mast-proxy/{}", env!("CARGO_PKG_VERSION")),
        "state": super::server_state(state),
        "uptime_current_epoch": format!("{uptime}s"),
        "uptime_all_epochs": format!("{uptime}s"),
        "node": node,
        "command_line_options": {
            "concurrency": state.bootstrap.workers,
            "drain_time": format!("{}s", state.bootstrap.drain.as_secs()),
        },
    })
}

/// Envoy's `SecretsConfigDump` for the in-process SDS secrets: `default` (the certificate
/// chain inline, the private key redacted as Envoy does) and `ROOTCA` (the trusted roots),
/// with `version_info` and `last_updated`; no entries before the first certificate.
pub(super) fn secrets_dump(store: &crate::tls::SecretStore) -> Result<Value, String> {
    use crate::tls::secrets::{DEFAULT_SECRET, ROOTCA_SECRET};
    use envoy_types::pb::envoy::admin::v3::{SecretsConfigDump, secrets_config_dump};
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, Secret, TlsCertificate, secret,
    };
    let mut dump = SecretsConfigDump::default();
    if let Some(m) = store.current() {
        let inline = |bytes: &[u8]| DataSource {
            specifier: Some(Specifier::InlineBytes(bytes.to_vec())),
            ..DataSource::default()
        };
        let updated = timestamp(m.updated);
        let version = rfc3339(m.updated);
        let cert = Secret {
            name: DEFAULT_SECRET.into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(m.bundle.chain_pem.as_bytes())),
                private_key: Some(inline(b"[redacted]")),
                ..TlsCertificate::default()
            })),
        };
        let roots = Secret {
            name: ROOTCA_SECRET.into(),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(m.bundle.roots_pem.as_bytes())),
                    ..CertificateValidationContext::default()
                },
            )),
        };
        for s in [cert, roots] {
            dump.dynamic_active_secrets
                .push(secrets_config_dump::DynamicSecret {
                    name: s.name.clone(),
                    version_info: version.clone(),
                    last_updated: Some(updated),
                    secret: Some(envoy_types::util::pack_any(s)),
                    ..secrets_config_dump::DynamicSecret::default()
                });
        }
    }
    mast_xds_json::any_to_json(&envoy_types::util::pack_any(dump)).map_err(|e| e.to_string())
}

fn timestamp(t: std::time::SystemTime) -> envoy_types::pb::google::protobuf::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    envoy_types::pb::google::protobuf::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod secret_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_150_000);
        assert_eq!(rfc3339(t), "2025-11-26T09:40:00Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn secrets_show_the_chain_and_redact_the_key() {
        let store = crate::tls::SecretStore::new();
        let empty = secrets_dump(&store).unwrap();
        assert!(empty.get("dynamic_active_secrets").is_none(), "{empty}");
        let bundle = crate::tls::tests::bundle("ns1", "sa1");
        let chain = bundle.chain_pem.clone();
        store.set(Some(std::sync::Arc::new(bundle))).unwrap();
        let dump = secrets_dump(&store).unwrap();
        assert_eq!(
            dump["@type"],
            "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
        );
        let secrets = dump["dynamic_active_secrets"].as_array().unwrap();
        let names: Vec<&str> = secrets
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["default", "ROOTCA"]);
        let cert = &secrets[0]["secret"]["tls_certificate"];
        let b64 = cert["certificate_chain"]["inline_bytes"].as_str().unwrap();
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decoded, chain.as_bytes());
        let key = cert["private_key"]["inline_bytes"].as_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .unwrap(),
            b"[redacted]"
        );
        assert!(
            secrets[1]["secret"]["validation_context"]["trusted_ca"]["inline_bytes"].is_string()
        );
        assert!(secrets[0]["last_updated"].is_string());
        assert!(secrets[0]["version_info"].as_str().unwrap().ends_with('Z'));
    }
}
