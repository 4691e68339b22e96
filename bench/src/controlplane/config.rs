//! The benchmark's mesh as a folder of ordinary Kubernetes and Istio YAML, and the edits the
//! benchmark makes to it.
//!
//! Service `i` is `svcNNNN` in namespace `nsMM` (`i` modulo the namespace count): a Kubernetes
//! `Service` (one HTTP port 80 → 8080, a cluster IP, selector `app: svcNNNN`), a
//! `VirtualService` splitting its traffic 90/10 over subsets `v1`/`v2` and setting a request
//! header `x-mast-bench-rev` (whose value the VirtualService edit changes, so a client can
//! tell the new route from the old), and a `DestinationRule` with the two subsets, all in
//! `svcNNNN.yaml`. Its endpoints are `WorkloadEntry`s (labels `app`, `version` alternating
//! v1/v2) selected by the Service's selector, in `svcNNNN-workloads.yaml`, so an endpoint
//! change rewrites that one small file. Every edit is written to a file outside the folder and
//! renamed into place, as editors do, so the watcher never reads half a file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The cluster DNS suffix mastd uses by default.
const DOMAIN: &str = "svc.cluster.local";

/// The shape of the generated mesh.
#[derive(Debug, Clone, Copy)]
pub struct MeshShape {
    /// Number of services.
    pub services: usize,
    /// Endpoints (WorkloadEntries) per service.
    pub endpoints: usize,
    /// Namespaces the services are spread over.
    pub namespaces: usize,
}

impl MeshShape {
    /// Service `i`'s name.
    pub fn name(&self, i: usize) -> String {
        format!("svc{i:04}")
    }

    /// Service `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("ns{:02}", i % self.namespaces.max(1))
    }

    /// Service `i`'s fully qualified host name.
    pub fn host(&self, i: usize) -> String {
        format!("{}.{}.{DOMAIN}", self.name(i), self.namespace(i))
    }

    /// The outbound cluster of service `i`'s port 80 (no subset).
    pub fn cluster(&self, i: usize) -> String {
        format!("outbound|80||{}", self.host(i))
    }
}

/// An address in 10.0.0.0/9 for endpoint `index`, unique up to 8 million endpoints.
fn endpoint_ip(index: usize) -> String {
    let n = index + 1;
    format!("10.{}.{}.{}", (n >> 16) & 0x7f, (n >> 8) & 0xff, n & 0xff)
}

/// An address in 10.200.0.0/16 for the `generation`-th endpoint edit (never used initially).
pub fn changed_ip(generation: usize) -> String {
    format!("10.200.{}.{}", (generation >> 8) & 0xff, generation & 0xff)
}

/// The value of `x-mast-bench-rev` in a VirtualService of revision `rev`.
pub fn revision_marker(rev: usize) -> String {
    format!("bench-rev-{rev}")
}

/// Writes the whole mesh into `dir`; returns the number of YAML documents written.
pub fn write_mesh(dir: &Path, shape: &MeshShape) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut namespaces = String::new();
    for n in 0..shape.namespaces.min(shape.services) {
        let _ = write!(
            namespaces,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n---\n",
            shape.namespace(n)
        );
    }
    write_file(&dir.join("namespaces.yaml"), &namespaces)?;
    for i in 0..shape.services {
        write_file(&service_path(dir, shape, i), &service_yaml(shape, i, 0))?;
        write_file(
            &workloads_path(dir, shape, i),
            &workloads_yaml(shape, i, None),
        )?;
    }
    Ok(shape.namespaces.min(shape.services) + shape.services * (3 + shape.endpoints))
}

/// Rewrites service `i`'s endpoints with its first endpoint moved to `ip`.
pub fn change_endpoint(dir: &Path, shape: &MeshShape, i: usize, ip: &str) -> anyhow::Result<()> {
    replace_file(
        &workloads_path(dir, shape, i),
        &workloads_yaml(shape, i, Some(ip)),
    )
}

/// Rewrites service `i`'s VirtualService at revision `rev` (new weights, new header value).
pub fn change_virtual_service(
    dir: &Path,
    shape: &MeshShape,
    i: usize,
    rev: usize,
) -> anyhow::Result<()> {
    replace_file(&service_path(dir, shape, i), &service_yaml(shape, i, rev))
}

fn service_path(dir: &Path, shape: &MeshShape, i: usize) -> PathBuf {
    dir.join(format!("{}.yaml", shape.name(i)))
}

fn workloads_path(dir: &Path, shape: &MeshShape, i: usize) -> PathBuf {
    dir.join(format!("{}-workloads.yaml", shape.name(i)))
}

/// Service, VirtualService (revision `rev`: weights move 10 points per revision) and
/// DestinationRule of service `i`.
fn service_yaml(shape: &MeshShape, i: usize, rev: usize) -> String {
    let (name, ns) = (shape.name(i), shape.namespace(i));
    let v1 = 90 - (rev * 10) % 80;
    let v2 = 100 - v1;
    let marker = revision_marker(rev);
    let vip = format!("10.96.{}.{}", (i >> 8) & 0xff, i & 0xff);
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {name}}}\nspec:\n  clusterIP: {vip}\n  selector: {{app: {name}}}\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n---\n\
apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  hosts: [{name}]\n  http:\n  - headers:\n      request:\n        set: {{x-mast-bench-rev: {marker}}}\n    route:\n    - destination: {{host: {name}, subset: v1}}\n      weight: {v1}\n    - destination: {{host: {name}, subset: v2}}\n      weight: {v2}\n---\n\
apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  host: {name}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n"
    )
}

/// Service `i`'s WorkloadEntries; with `first_ip`, the first one has that address instead.
fn workloads_yaml(shape: &MeshShape, i: usize, first_ip: Option<&str>) -> String {
    let (name, ns) = (shape.name(i), shape.namespace(i));
    let mut s = String::new();
    for j in 0..shape.endpoints {
        let ip = match first_ip {
            Some(ip) if j == 0 => ip.to_owned(),
            _ => endpoint_ip(i * shape.endpoints + j),
        };
        let version = if j % 2 == 0 { "v1" } else { "v2" };
        let _ = write!(
            s,
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}-{j}\n  namespace: {ns}\nspec:\n  address: {ip}\n  labels: {{app: {name}, version: {version}}}\n  serviceAccount: {name}\n---\n"
        );
    }
    s
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes `text` next to the folder (outside it, so the watcher ignores it) and renames it
/// over `path`.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("a config file has a folder")?;
    let outside = dir.parent().unwrap_or(dir);
    let name = path.file_name().context("a config file has a name")?;
    let tmp = outside.join(format!(".{}.tmp", name.to_string_lossy()));
    write_file(&tmp, text)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_mesh_loads_and_validates() {
        let dir = std::env::temp_dir().join(format!("mast-cp-bench-test-{}", std::process::id()));
        let shape = MeshShape {
            services: 4,
            endpoints: 3,
            namespaces: 2,
        };
        let docs = write_mesh(&dir, &shape).unwrap();
        let loaded = mast_config::load_paths(&[&dir], &mast_config::LoadOptions::default());
        assert_eq!(loaded.resources.len(), docs, "{:?}", loaded.diagnostics);
        change_endpoint(&dir, &shape, 1, &changed_ip(1)).unwrap();
        change_virtual_service(&dir, &shape, 1, 1).unwrap();
        let text = std::fs::read_to_string(dir.join("svc0001.yaml")).unwrap();
        assert!(text.contains("bench-rev-1") && text.contains("weight: 80"));
        let text = std::fs::read_to_string(dir.join("svc0001-workloads.yaml")).unwrap();
        assert!(text.contains("10.200.0.1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
