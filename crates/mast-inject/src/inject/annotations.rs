//! The per-pod annotations injection honours, read and checked: `sidecar.istio.io/proxyImage`,
//! `…/proxyCPU|proxyMemory|proxyCPULimit|proxyMemoryLimit`, `…/rewriteAppHTTPProbers`,
//! `traffic.sidecar.istio.io/includeInboundPorts|excludeInboundPorts|
//! includeOutboundIPRanges|excludeOutboundIPRanges|excludeOutboundPorts|includeOutboundPorts`
//! and `proxy.istio.io/config` (its `discoveryAddress`, `concurrency`, `meshId`). A bad value
//! is an error naming the resource and the annotation, as Istio's webhook rejects it.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::{InjectConfig, InjectError, Owner};

/// The capture ports istio-init never redirects inbound: proxy metrics, health, agent.
pub const EXCLUDED_INBOUND: [&str; 3] = ["15090", "15021", "15020"];

/// The configuration in force for one pod: the injector's, with the pod's annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSettings {
    /// The injector's configuration with image, resources and proxy config overridden.
    pub cfg: InjectConfig,
    /// The proxy's (and init container's) resources: Istio's defaults, or only what the
    /// `sidecar.istio.io/proxyCPU|proxyMemory|proxyCPULimit|proxyMemoryLimit` annotations say.
    pub resources: Value,
    /// Whether application probes go through the agent.
    pub rewrite_probes: bool,
    /// `-b`: inbound ports captured (`*` for all).
    pub include_inbound_ports: String,
    /// Extra ports for `-d` (after 15090,15021,15020).
    pub exclude_inbound_ports: String,
    /// `-i`: outbound CIDRs captured (`*` for all).
    pub include_outbound_ranges: String,
    /// `-x`: outbound CIDRs never captured.
    pub exclude_outbound_ranges: String,
    /// `-o`: outbound ports never captured.
    pub exclude_outbound_ports: String,
    /// `-q`: outbound ports always captured.
    pub include_outbound_ports: String,
}

impl PodSettings {
    /// Reads the annotations of the pod template `pod`.
    pub fn read(
        pod: &Map<String, Value>,
        cfg: &InjectConfig,
        owner: &Owner,
    ) -> Result<Self, InjectError> {
        let empty = Map::new();
        let ann = pod
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let r = Reader { ann, owner };
        let mut cfg = cfg.clone();
        if let Some(pc) = r.get("proxy.istio.io/config")? {
            apply_proxy_config(&mut cfg, &pc, owner)?;
        }
        r.set(&mut cfg.image, "sidecar.istio.io/proxyImage", nonempty)?;
        let resources = r.resources(&mut cfg)?;
        let mut rewrite = cfg.rewrite_app_probers.to_string();
        r.set(
            &mut rewrite,
            "sidecar.istio.io/rewriteAppHTTPProbers",
            boolean,
        )?;
        let traffic = |name: &str, default: &str, check: Check| -> Result<String, InjectError> {
            let mut v = default.to_owned();
            r.set(&mut v, &format!("traffic.sidecar.istio.io/{name}"), check)?;
            Ok(v)
        };
        Ok(Self {
            resources,
            rewrite_probes: rewrite == "true",
            include_inbound_ports: traffic("includeInboundPorts", "*", ports)?,
            exclude_inbound_ports: traffic("excludeInboundPorts", "", ports)?,
            include_outbound_ranges: traffic("includeOutboundIPRanges", "*", cidrs)?,
            exclude_outbound_ranges: traffic("excludeOutboundIPRanges", "", cidrs)?,
            exclude_outbound_ports: traffic("excludeOutboundPorts", "", ports)?,
            include_outbound_ports: traffic("includeOutboundPorts", "", ports)?,
            cfg,
        })
    }

    /// istio-iptables' arguments for this pod, in the order of Istio's template.
    pub fn iptables_args(&self) -> Vec<String> {
        // Istio's template: "15090,15021," then the annotation's ports, then the agent's
        // 15020 (once).
        let mut excluded: Vec<&str> = EXCLUDED_INBOUND[..2].to_vec();
        excluded.extend(split(&self.exclude_inbound_ports).filter(|p| *p != EXCLUDED_INBOUND[2]));
        excluded.push(EXCLUDED_INBOUND[2]);
        let mut args: Vec<String> = [
            "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(self.include_outbound_ranges.clone());
        args.extend(["-x".into(), self.exclude_outbound_ranges.clone()]);
        args.extend(["-b".into(), self.include_inbound_ports.clone()]);
        args.extend(["-d".into(), excluded.join(",")]);
        if !self.exclude_outbound_ports.is_empty() {
            args.extend(["-o".into(), self.exclude_outbound_ports.clone()]);
        }
        if !self.include_outbound_ports.is_empty() {
            args.extend(["-q".into(), self.include_outbound_ports.clone()]);
        }
        args
    }

    /// The proxy's (and init container's) resources.
    pub fn resources(&self) -> Value {
        self.resources.clone()
    }
}

type Check = fn(&str) -> Result<(), String>;

struct Reader<'a> {
    ann: &'a Map<String, Value>,
    owner: &'a Owner,
}

impl Reader<'_> {
    fn error(&self, annotation: &str, message: String) -> InjectError {
        InjectError::BadAnnotation {
            resource: self.owner.display(),
            annotation: annotation.to_owned(),
            message,
        }
    }

    fn get(&self, name: &str) -> Result<Option<String>, InjectError> {
        match self.ann.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.error(
                name,
                format!("expected a string, found {}", super::type_name(other)),
            )),
        }
    }

    /// Reads the four resource annotations into `cfg`; returns the resources block.
    fn resources(&self, cfg: &mut InjectConfig) -> Result<Value, InjectError> {
        let slots = [
            ("proxyCPU", "requests", "cpu"),
            ("proxyMemory", "requests", "memory"),
            ("proxyCPULimit", "limits", "cpu"),
            ("proxyMemoryLimit", "limits", "memory"),
        ];
        let mut block = Map::new();
        for (name, group, res) in slots {
            let annotation = format!("sidecar.istio.io/{name}");
            let Some(v) = self.get(&annotation)? else {
                continue;
            };
            let v = v.trim();
            quantity(v).map_err(|m| self.error(&annotation, format!("{v:?}: {m}")))?;
            let entry = block.entry(group).or_insert_with(|| json!({}));
            if let Some(m) = entry.as_object_mut() {
                m.insert(res.into(), json!(canonical_quantity(v)));
            }
        }
        if block.is_empty() {
            return Ok(json!({
                "limits": { "cpu": cfg.cpu_limit, "memory": cfg.memory_limit },
                "requests": { "cpu": cfg.cpu_request, "memory": cfg.memory_request },
            }));
        }
        let get = |g: &str, r: &str| block.get(g).and_then(|m| m.get(r)).and_then(Value::as_str);
        let cores = get("requests", "cpu").or_else(|| get("limits", "cpu"));
        if cfg.concurrency == 0
            && let Some(n) = cores.and_then(whole_cores)
        {
            cfg.concurrency = n;
        }
        Ok(Value::Object(block))
    }

    fn set(&self, slot: &mut String, name: &str, check: Check) -> Result<(), InjectError> {
        if let Some(v) = self.get(name)? {
            let v = v.trim().to_owned();
            check(&v).map_err(|m| self.error(name, format!("{v:?}: {m}")))?;
            *slot = v;
        }
        Ok(())
    }
}

fn apply_proxy_config(
    cfg: &mut InjectConfig,
    text: &str,
    owner: &Owner,
) -> Result<(), InjectError> {
    let error = |message: String| InjectError::BadAnnotation {
        resource: owner.display(),
        annotation: "proxy.istio.io/config".into(),
        message,
    };
    let doc = mast_config::yaml::parse_documents(text).into_iter().next();
    let value = match doc {
        None => return Ok(()),
        Some(Err(e)) => return Err(error(format!("YAML syntax error: {}", e.message))),
        Some(Ok(d)) => d.value,
    };
    cfg.apply_proxy_config(&value, "").map_err(|(field, m)| {
        error(if field.is_empty() {
            m
        } else {
            format!("{field}: {m}")
        })
    })
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn nonempty(v: &str) -> Result<(), String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn boolean(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("expected \"true\" or \"false\"".into()),
    }
}

/// A Kubernetes quantity: a decimal number with an optional suffix (`100m`, `1.5`, `128Mi`).
fn quantity(v: &str) -> Result<(), String> {
    const SUFFIXES: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &v[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.parse::<f64>().is_ok();
    if number_ok && SUFFIXES.contains(&suffix) {
        Ok(())
    } else {
        Err("not a Kubernetes quantity (for example 100m, 128Mi, 2)".into())
    }
}

/// `4000m` → `4`, as Kubernetes prints whole cores; anything else unchanged.
fn canonical_quantity(v: &str) -> String {
    match v.strip_suffix('m').and_then(|n| n.parse::<u64>().ok()) {
        Some(milli) if milli % 1000 == 0 => (milli / 1000).to_string(),
        _ => v.to_owned(),
    }
}

/// CPU as whole cores rounded up (`500m` → 1, `2` → 2), at least 1.
fn whole_cores(v: &str) -> Option<u32> {
    let milli = match v.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()?,
        None => v.parse::<f64>().ok()? * 1000.0,
    };
    let cores = (milli / 1000.0).ceil().max(1.0);
    (cores <= f64::from(u32::MAX)).then_some(cores as u32)
}

/// `*`, or comma-separated port numbers 1-65535.
fn ports(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    for p in split(v) {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("{p:?} is not a port number (1-65535)")),
        }
    }
    Ok(())
}

/// `*`, or comma-separated CIDRs (`10.0.0.0/8`, `fd00::/8`).
fn cidrs(v: &str) -> Result<(), String> {
    if v == "*" {
        return Ok(());
    }
    for c in split(v) {
        let (ip, len) = c
            .split_once('/')
            .ok_or_else(|| format!("{c:?} is not a CIDR (no /)"))?;
        let ip: IpAddr = ip.parse().map_err(|_| format!("{c:?}: bad IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(n) if n <= max => {}
            _ => return Err(format!("{c:?}: bad prefix length")),
        }
    }
    Ok(())
}
