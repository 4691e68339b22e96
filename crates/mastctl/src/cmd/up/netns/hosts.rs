//! Name resolution in a pod's namespace: `/etc/netns/<ns>/hosts` (which `ip netns exec`
//! mounts over `/etc/hosts`), mapping each Service's names as a pod's resolver would
//! (`name` for its own namespace, `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`)
//! to its ClusterIP, or, when it has none, to a VIP from 10.213.1.0/24 onwards that mastd
//! does not know: the sidecar's `0.0.0.0_<port>` listener then routes HTTP by Host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use mast_config::Resource;

use super::{ETC_NETNS, Network, Pod};

/// A Service's namespace, name and address.
fn services(net: &Network, resources: &[Resource]) -> Vec<(String, String, String)> {
    let mut vips = net.vips.lock();
    let mut out = Vec::new();
    for r in resources {
        let Some(service) = r.as_service() else {
            continue;
        };
        let ns = if r.namespace().is_empty() {
            "default"
        } else {
            r.namespace()
        };
        let value = serde_json::to_value(service).unwrap_or_default();
        let cluster_ip = value["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .map(str::to_owned);
        let host = format!("{}.{ns}", r.name());
        let addr = match cluster_ip {
            Some(ip) => ip,
            None => {
                let next = vips.len();
                vips.entry(host)
                    .or_insert_with(|| format!("10.213.{}.{}", 1 + next / 250, 1 + next % 250))
                    .clone()
            }
        };
        out.push((ns.to_owned(), r.name().to_owned(), addr));
    }
    out
}

/// The hosts file of a pod of namespace `namespace` named `name`.
pub fn text(
    net: &Network,
    pod: &Pod,
    namespace: &str,
    name: &str,
    resources: &[Resource],
) -> String {
    let mut out = format!(
        "# Written by mastctl up --capture namespaces\n127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{name}\n",
        pod.ip
    );
    let mut seen = BTreeMap::new();
    for (ns, svc, addr) in services(net, resources) {
        if seen.insert(format!("{svc}.{ns}"), ()).is_some() {
            continue;
        }
        let short = if ns == namespace {
            format!(" {svc}")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{addr}\t{svc}.{ns}.svc.cluster.local {svc}.{ns}.svc {svc}.{ns}{short}"
        );
    }
    out
}

/// Writes the pod's hosts file (renamed in whole).
pub fn write(net: &Network, pod: &Pod, namespace: &str, name: &str, resources: &[Resource]) {
    let dir = Path::new(ETC_NETNS).join(&pod.ns);
    let tmp = dir.join(".hosts.tmp");
    let result = std::fs::write(&tmp, text(net, pod, namespace, name, resources))
        .and_then(|()| std::fs::rename(&tmp, dir.join("hosts")));
    if let Err(e) = result {
        crate::cmd::up::proc::say(format!("writing {}/hosts: {e}", dir.display()));
    }
}
