//! The gRPC service and what every stream shares: the [`Core`] (push events, registry,
//! metrics, shutdown signal, the push task), the tonic trait implementation that spawns one
//! task per stream, and the [`Session`] a stream opens once its first request names the node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use futures::{Stream, StreamExt};
use mast_model::MeshSnapshot;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::generator::Generator;
use crate::grpc::SotwResponse;
use crate::metrics::{ConnectedGuard, Metrics};
use crate::push::{Debounce, PushEvent, run_pusher};
use crate::share::Generation;
use crate::status::{ConnGuard, Registry, XdsProtocol};
use crate::view::{Generated, ProxyView};
use crate::wire::{Requests, SotwRequest};

/// Responses buffered per stream before the stream task waits for the proxy to read.
const STREAM_BUFFER: usize = 16;
/// How long a new stream may take to send its first request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The control-plane identifier sent in every response.
const CONTROL_PLANE_ID: &str = "mastd";

/// What the push task needs, kept until it starts.
struct PusherStart {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    generator: Arc<dyn Generator>,
    debounce: Debounce,
}

/// State shared by the server handle, the service and every stream.
pub(crate) struct Core {
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: Metrics,
    events: Arc<watch::Sender<Arc<PushEvent>>>,
    closing: watch::Sender<bool>,
    pusher: Mutex<Option<PusherStart>>,
    generation: Mutex<Option<Arc<Generation>>>,
}

impl Core {
    /// A core whose streams start at `initial`.
    pub(crate) fn new(initial: Arc<MeshSnapshot>) -> Self {
        let (events, _) = watch::channel(Arc::new(PushEvent::initial(initial)));
        let (closing, _) = watch::channel(false);
        Self {
            registry: Arc::default(),
            metrics: Metrics::default(),
            events: Arc::new(events),
            closing,
            pusher: Mutex::new(None),
            generation: Mutex::new(None),
        }
    }

    /// Records what the push task will run with, unless already set.
    pub(crate) fn prepare_pusher(
        &self,
        snapshots: watch::Receiver<Arc<MeshSnapshot>>,
        generator: Arc<dyn Generator>,
        debounce: Debounce,
    ) {
        let mut current = self.generation.lock();
        if current.is_none() {
            *current = Some(Arc::new(Generation::new(generator.clone())));
            *self.pusher.lock() = Some(PusherStart {
                snapshots,
                generator,
                debounce,
            });
        }
    }

    /// Starts the push task if it is prepared, not yet running, and a runtime is available.
    pub(crate) fn ensure_pusher(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(start) = self.pusher.lock().take() {
            let closing = self.closing.subscribe();
            handle.spawn(run_pusher(
                start.snapshots,
                self.events.clone(),
                start.generator,
                start.debounce,
                closing,
            ));
        }
    }

    /// Ends every stream and the push task.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn stream_ctx(&self) -> Option<StreamCtx> {
        Some(StreamCtx {
            generation: self.generation.lock().clone()?,
            events: self.events.subscribe(),
            closing: self.closing.subscribe(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

/// A new stream's context, its response sender and the stream handed to tonic.
type Opened<Resp> = (
    StreamCtx,
    mpsc::Sender<Result<Resp, Status>>,
    ReceiverStream<Result<Resp, Status>>,
);

/// The ADS implementation behind [`crate::AdsServer`].
pub struct AdsService {
    core: Arc<Core>,
}

impl std::fmt::Debug for AdsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsService").finish_non_exhaustive()
    }
}

impl AdsService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    fn open<Resp>(&self) -> Result<Opened<Resp>, Status> {
        self.core.ensure_pusher();
        let ctx = self
            .core
            .stream_ctx()
            .ok_or_else(|| Status::unavailable("xDS server not started"))?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        Ok((ctx, tx, ReceiverStream::new(rx)))
    }
}

/// The stream of responses handed to tonic.
pub(crate) type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

impl AdsService {
    /// `StreamAggregatedResources`: spawns the stream's task.
    pub(crate) fn sotw(
        &self,
        requests: Requests<SotwRequest>,
    ) -> Result<mpsc::Receiver<Result<SotwResponse, Status>>, Status> {
        let (ctx, tx, rx) = self.open::<SotwResponse>()?;
        tokio::spawn(crate::sotw::run(ctx, requests, tx));
        Ok(rx.into_inner())
    }

    /// `DeltaAggregatedResources`: spawns the stream's task.
    pub(crate) fn delta(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<ResponseStream<DeltaDiscoveryResponse>>, Status> {
        let (ctx, tx, rx) = self.open::<DeltaDiscoveryResponse>()?;
        tokio::spawn(crate::delta::run(ctx, request.into_inner(), tx));
        Ok(Response::new(rx))
    }
}

/// What a stream task starts with.
pub(crate) struct StreamCtx {
    generation: Arc<Generation>,
    events: watch::Receiver<Arc<PushEvent>>,
    closing: watch::Receiver<bool>,
    registry: Arc<Registry>,
    metrics: Metrics,
}

/// A stream whose node is known: its view of the mesh, status record and signals.
pub(crate) struct Session {
    pub(crate) view: ProxyView,
    pub(crate) conn: ConnGuard,
    pub(crate) metrics: Metrics,
    pub(crate) events: watch::Receiver<Arc<PushEvent>>,
    pub(crate) closing: watch::Receiver<bool>,
    _connected: ConnectedGuard,
}

impl Session {
    /// Opens a session for the node of a stream's first request.
    pub(crate) fn start(
        mut ctx: StreamCtx,
        node: Option<&Node>,
        protocol: XdsProtocol,
    ) -> Result<Self, Status> {
        let (proxy, summary) = crate::node::parse_node(node)?;
        let event = ctx.events.borrow_and_update().clone();
        let conn = ctx.registry.open(&proxy.id, summary, protocol);
        tracing::info!(node = %proxy.id, ?protocol, "proxy connected");
        Ok(Self {
            view: ProxyView::new(proxy, ctx.generation, event),
            conn,
            _connected: ctx.metrics.connected(),
            metrics: ctx.metrics,
            events: ctx.events,
            closing: ctx.closing,
        })
    }

    /// The node id.
    pub(crate) fn node_id(&self) -> &str {
        &self.view.proxy().id
    }

    /// The resources of `type_url` (generated if needed), recorded for the config dump.
    pub(crate) async fn generated(&mut self, type_url: &str) -> Result<Arc<Generated>, Gone> {
        let generated = self.view.get(type_url).await?;
        let recorded = generated.clone();
        self.conn.update(|r| r.generated(type_url, recorded));
        Ok(generated)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tracing::info!(node = %self.view.proxy().id, "proxy disconnected");
    }
}

/// What a stream task does next.
enum Step<Req> {
    /// Handle this request.
    Request(Req),
    /// A new push event is available.
    Event(Arc<PushEvent>),
    /// The server is shutting down: end the stream with UNAVAILABLE.
    Close,
    /// The proxy closed the stream or it failed.
    End,
}

/// Waits for the next thing a stream must handle: shutdown first, then the proxy's
/// requests, then pushes (`biased`, so a closing stream never sends a push).
async fn next_step<Req, S>(session: &mut Session, requests: &mut S) -> Step<Req>
where
    S: Stream<Item = Result<Req, Status>> + Unpin,
{
    let closing = &mut session.closing;
    let events = &mut session.events;
    tokio::select! {
        biased;
        true = async { closing.wait_for(|c| *c).await.is_ok() } => Step::Close,
        msg = requests.next() => match msg {
            Some(Ok(req)) => Step::Request(req),
            Some(Err(status)) => {
                tracing::debug!(%status, "stream ended by error");
                Step::End
            }
            None => Step::End,
        },
        Ok(()) = events.changed() => Step::Event(events.borrow_and_update().clone()),
    }
}

/// One protocol's handling of a stream (state of the world or delta); [`serve`] drives it.
pub(crate) trait StreamHandler<Req> {
    /// The responses it sends.
    type Resp;

    /// The stream's session.
    fn session(&mut self) -> &mut Session;

    /// Where its responses go.
    fn tx(&self) -> &mpsc::Sender<Result<Self::Resp, Status>>;

    /// Handles a request from the proxy.
    async fn on_request(&mut self, req: Req) -> Result<(), Gone>;

    /// Handles a new push event.
    async fn on_event(&mut self, event: Arc<PushEvent>) -> Result<(), Gone>;
}

/// Runs one stream to its end: reads the first request, opens the session for its node
/// (refusing the stream with the reason when the node is unusable), builds the protocol's
/// handler and feeds it requests and push events until the proxy goes or the server closes
/// (then the stream ends with UNAVAILABLE).
pub(crate) async fn serve<Req, S, H>(
    ctx: StreamCtx,
    mut requests: S,
    tx: mpsc::Sender<Result<H::Resp, Status>>,
    protocol: XdsProtocol,
    node: fn(&Req) -> Option<&Node>,
    handler: impl FnOnce(Session, mpsc::Sender<Result<H::Resp, Status>>) -> H,
) where
    S: Stream<Item = Result<Req, Status>> + Unpin,
    H: StreamHandler<Req>,
{
    let Some(first) = first_request(&mut requests).await else {
        return;
    };
    let session = match Session::start(ctx, node(&first), protocol) {
        Ok(s) => s,
        Err(status) => {
            tracing::warn!(error = %status.message(), protocol = protocol.name(), "refusing ADS stream");
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    let span = tracing::info_span!("ads", node = %session.node_id(), protocol = protocol.name());
    drive(handler(session, tx), first, requests)
        .instrument(span)
        .await;
}

async fn drive<Req, S, H>(mut handler: H, first: Req, mut requests: S)
where
    S: Stream<Item = Result<Req, Status>> + Unpin,
    H: StreamHandler<Req>,
{
    if handler.on_request(first).await.is_err() {
        return;
    }
    loop {
        let step = match next_step(handler.session(), &mut requests).await {
            Step::Request(req) => handler.on_request(req).await,
            Step::Event(event) => handler.on_event(event).await,
            Step::Close => {
                let _ = handler
                    .tx()
                    .send(Err(Status::unavailable("control plane shutting down")))
                    .await;
                return;
            }
            Step::End => return,
        };
        if step.is_err() {
            return;
        }
    }
}

/// The proxy has gone (its response channel is closed).
#[derive(Debug)]
pub(crate) struct Gone;

/// Reads a stream's first request; `None` when the stream ends, fails or stays silent.
async fn first_request<Req, S>(requests: &mut S) -> Option<Req>
where
    S: Stream<Item = Result<Req, Status>> + Unpin,
{
    match tokio::time::timeout(FIRST_REQUEST_TIMEOUT, requests.next()).await {
        Ok(Some(Ok(req))) => Some(req),
        Ok(Some(Err(status))) => {
            tracing::debug!(%status, "stream failed before its first request");
            None
        }
        Ok(None) => None,
        Err(_) => {
            tracing::warn!(
                "no request within {FIRST_REQUEST_TIMEOUT:?} of opening an ADS stream; closing it"
            );
            None
        }
    }
}

/// A nonce unique within this process.
pub(crate) fn next_nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The control-plane identity sent in responses.
pub(crate) fn control_plane() -> Option<ControlPlane> {
    Some(ControlPlane {
        identifier: CONTROL_PLANE_ID.into(),
    })
}
