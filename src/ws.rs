//! GraphQL subscriptions over WebSocket (`GET /graphql` with an upgrade): the connection loop of
//! `graphql-transport-ws` (and of the legacy `graphql-ws`). It is written here, over `actix-ws`
//! frames, rather than taken from async-graphql-actix-web, so that the server decides what a
//! socket may do before it is authenticated and how much it may hold (docs/subscriptions.md):
//!
//! - The API key is resolved at `connection_init` (its payload, else the upgrade's
//!   `Authorization` header) like an HTTP request's. No key or a bad one closes the socket with
//!   4403 before any operation is parsed; a `subscribe` before `connection_ack` closes it with
//!   4401; a socket that sends no `connection_init` within `SocketLimits::init_timeout` is
//!   closed with 4408.
//! - The caps of `subscriptions::admission`, per process: over the connection caps the upgrade
//!   is refused with HTTP 429 (when the key is in the upgrade's header) or the socket closed with
//!   4429 after `connection_init`; a `subscribe` over the subscription caps gets an `error`
//!   message with `RATE_LIMITED` and the socket stays open. Slots are RAII guards owned by this
//!   loop, released whenever it drops them.
//! - Each subscription re-resolves the key through the per-process key cache, so a revoked key
//!   starts nothing new once the cache forgets it; running subscriptions continue.
//! - A ping frame every [`HEARTBEAT`]; a peer silent for [`PEER_TIMEOUT`], or one that stops
//!   reading for as long, is dropped (so a stalled client cannot pin its slots).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason};
use futures_util::stream::{AbortHandle, BoxStream, SelectAll};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::auth::RequestAuth;
use crate::error::AppError;
use crate::served::Served;
use crate::state::AppState;
use crate::subscriptions::admission::{ConnectionSlot, KeySlot, Refusal, SubscriptionSlot};

/// How often the server pings an idle peer.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a peer may stay silent, or leave a message unread, before it is dropped.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(45);
/// How often an acknowledged connection checks that its key still stands (through the key
/// cache, which revocations evict within about a second): a revoked key's open subscriptions
/// end with the socket (close 4403) rather than running on.
pub const KEY_CHECK: Duration = Duration::from_millis(500);

/// What the upgrade handler needs: the state, the schema and the admission checks every
/// operation passes, as over HTTP.
struct Endpoint {
    served: web::Data<Served>,
}

/// Registers the upgrade route (called from `app::start`, ahead of the plain `GET /graphql`).
pub fn routes(cfg: &mut web::ServiceConfig, served: &web::Data<Served>) {
    cfg.service(
        web::resource("/graphql")
            .guard(guard::Get())
            .guard(guard::fn_guard(is_websocket_upgrade))
            .app_data(web::Data::new(Endpoint {
                served: served.clone(),
            }))
            .to(upgrade),
    );
}

fn is_websocket_upgrade(ctx: &guard::GuardContext<'_>) -> bool {
    ctx.head()
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The two subprotocols served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws` (the `graphql-ws` library's protocol).
    TransportWs,
    /// `graphql-ws` (Apollo's legacy subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    /// The first subprotocol the client offers that is served.
    fn requested(req: &HttpRequest) -> Option<Protocol> {
        req.headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| match p.trim() {
                "graphql-transport-ws" => Some(Protocol::TransportWs),
                "graphql-ws" => Some(Protocol::Legacy),
                _ => None,
            })
    }

    fn next(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        }
    }
}

fn error_body(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))
}

/// The upgrade: refused with 429 over the process's cap or (key in the header) the key's, else
/// a socket served by [`Connection::run`] on this worker.
async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    let Some(protocol) = Protocol::requested(&req) else {
        return error_body(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the WebSocket subprotocol must be graphql-transport-ws (or the legacy graphql-ws)",
        );
    };
    let state = &endpoint.served.state;
    let limits = &state.config.subscriptions;
    let admission = &endpoint.served.sockets;
    let too_many = |refusal: Refusal| {
        error_body(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &refusal.message(limits),
        )
    };
    let slot = match admission.open_connection(limits) {
        Ok(slot) => slot,
        Err(refusal) => return too_many(refusal),
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key_slot = match RequestAuth::from_header(header.as_deref()).bucket() {
        Some(key) => match admission.admit_key(&key, limits) {
            Ok(slot) => Some(slot),
            Err(refusal) => return too_many(refusal),
        },
        None => None,
    };
    // Answers with the chosen subprotocol in `Sec-WebSocket-Protocol`.
    let (response, session, messages) =
        match actix_ws::handle_with_protocols(&req, body, &[protocol.name()]) {
            Ok(parts) => parts,
            Err(e) => return HttpResponse::from_error(e),
        };
    let max_message = state.config.limits.max_body_bytes;
    let messages = messages
        .max_frame_size(max_message)
        .aggregate_continuations()
        .max_continuation_size(max_message);
    let connection = Connection {
        endpoint: endpoint.into_inner(),
        protocol,
        session,
        header,
        _slot: slot,
        key_slot,
        ready: None,
        operations: SelectAll::new(),
        active: HashMap::new(),
        generation: 0,
        last_heard: Instant::now(),
    };
    actix_web::rt::spawn(connection.run(messages));
    response
}

/// The `connection_init` payload's key: `{"Authorization": "Bearer …"}` (any case), also
/// accepted nested under `headers` as some clients send it.
fn init_authorization(payload: &Value) -> Option<String> {
    let find = |object: &Value| {
        object.as_object().and_then(|fields| {
            fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                .and_then(|(_, value)| value.as_str().map(str::to_owned))
        })
    };
    find(payload).or_else(|| payload.get("headers").and_then(find))
}

/// A client message's envelope, read before anything else of it.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
}

/// A client message's payload, read only once the envelope says it is wanted.
#[derive(Deserialize)]
struct WithPayload<T> {
    payload: Option<T>,
}

/// A server message.
#[derive(Serialize)]
struct Out<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

/// What the loop does next.
enum Flow {
    Continue,
    /// Close the socket with this code and reason.
    Close(u16, String),
    /// The peer is gone (or unresponsive): just stop.
    End,
}

fn close(code: u16, reason: &str) -> Flow {
    Flow::Close(code, reason.to_owned())
}

/// An acknowledged connection.
struct Ready {
    /// The key's slot in this process's per-key count.
    key: KeySlot,
    /// The `Authorization` value each operation resolves (through the key cache).
    authorization: String,
    /// Connection data: the principal resolved at `connection_init`.
    data: Arc<async_graphql::Data>,
}

/// A running operation.
struct Active {
    generation: u64,
    abort: AbortHandle,
    _slot: SubscriptionSlot,
}

/// An operation's output: `None` once it ended.
type OperationItem = (String, u64, Option<async_graphql::Response>);

struct Connection {
    endpoint: Arc<Endpoint>,
    protocol: Protocol,
    session: actix_ws::Session,
    /// The upgrade request's `Authorization` header.
    header: Option<String>,
    _slot: ConnectionSlot,
    /// The header key's slot, taken at the upgrade.
    key_slot: Option<KeySlot>,
    ready: Option<Ready>,
    operations: SelectAll<BoxStream<'static, OperationItem>>,
    /// Running operations by client id; dropping an entry releases its slot and stops it.
    active: HashMap<String, Active>,
    generation: u64,
    last_heard: Instant,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one value per loop turn, on the stack"
)]
enum Event {
    Frame(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
    Operation(OperationItem),
    InitTimeout,
    Heartbeat,
    KeyCheck,
    Shutdown,
}

impl Connection {
    fn state(&self) -> &AppState {
        &self.endpoint.served.state
    }

    async fn run(mut self, mut messages: AggregatedMessageStream) {
        let init_deadline = Instant::now() + self.state().config.subscriptions.init_timeout;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut key_check = tokio::time::interval_at(Instant::now() + KEY_CHECK, KEY_CHECK);
        key_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.state().shutdown.clone();
        let end = loop {
            let running = !self.operations.is_empty();
            let waiting = self.ready.is_none();
            let event = tokio::select! {
                frame = messages.next() => Event::Frame(frame),
                Some(item) = self.operations.next(), if running => Event::Operation(item),
                _ = tokio::time::sleep_until(init_deadline), if waiting => Event::InitTimeout,
                _ = heartbeat.tick() => Event::Heartbeat,
                _ = key_check.tick(), if !waiting => Event::KeyCheck,
                _ = shutdown.triggered() => Event::Shutdown,
            };
            let flow = match event {
                Event::Frame(frame) => self.on_frame(frame).await,
                Event::Operation(item) => self.on_operation(item).await,
                Event::InitTimeout => close(4408, "Connection initialisation timeout"),
                Event::Heartbeat => self.on_heartbeat().await,
                Event::KeyCheck => self.on_key_check().await,
                // RFC 6455 "going away": the client may reconnect to another process.
                Event::Shutdown => close(1001, "Server shutting down"),
            };
            match flow {
                Flow::Continue => {}
                other => break other,
            }
        };
        if let Flow::Close(code, reason) = end {
            let reason = CloseReason {
                code: CloseCode::from(code),
                description: Some(reason),
            };
            let _ =
                tokio::time::timeout(PEER_TIMEOUT, self.session.clone().close(Some(reason))).await;
        }
        // Dropping `self` stops every operation and releases every slot.
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Flow {
        let message = match frame {
            None => return Flow::End,
            Some(Ok(message)) => message,
            Some(Err(actix_ws::ProtocolError::Overflow)) => {
                return close(1009, "Message too big");
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "WebSocket protocol error");
                return close(1002, "Protocol error");
            }
        };
        self.last_heard = Instant::now();
        match message {
            AggregatedMessage::Text(text) => self.on_message(text.as_bytes()).await,
            AggregatedMessage::Binary(bytes) => self.on_message(&bytes).await,
            AggregatedMessage::Ping(bytes) => self.control(Control::Pong, &bytes).await,
            AggregatedMessage::Pong(_) => Flow::Continue,
            AggregatedMessage::Close(_) => close(1000, ""),
        }
    }

    /// One protocol message. The envelope is read first; a payload only when the connection's
    /// state lets the message type be served.
    async fn on_message(&mut self, bytes: &[u8]) -> Flow {
        let Ok(head) = serde_json::from_slice::<Head>(bytes) else {
            return close(4400, "Invalid message");
        };
        match head.kind.as_str() {
            "connection_init" if self.ready.is_some() => {
                close(4429, "Too many initialisation requests")
            }
            "connection_init" => self.init(bytes).await,
            "ping" => match self.protocol {
                Protocol::TransportWs => self.send("pong", None, None::<()>).await,
                Protocol::Legacy => close(4400, "Invalid message"),
            },
            "pong" => Flow::Continue,
            "subscribe" | "start" if self.ready.is_none() => close(4401, "Unauthorized"),
            "subscribe" | "start" => match head.id {
                Some(id) => self.subscribe(id, bytes).await,
                None => close(4400, "Invalid message"),
            },
            "complete" | "stop" => {
                if let Some(active) = head.id.and_then(|id| self.active.remove(&id)) {
                    active.abort.abort();
                }
                Flow::Continue
            }
            "connection_terminate" if self.protocol == Protocol::Legacy => close(1000, ""),
            _ => close(4400, "Invalid message"),
        }
    }

    /// `connection_init`: resolve the key, take its slot, acknowledge.
    async fn init(&mut self, bytes: &[u8]) -> Flow {
        let Ok(message) = serde_json::from_slice::<WithPayload<Value>>(bytes) else {
            return close(4400, "Invalid message");
        };
        let payload = message.payload.unwrap_or(Value::Null);
        let Some(authorization) = init_authorization(&payload).or_else(|| self.header.clone())
        else {
            return self.refuse_init(4403, "Forbidden").await;
        };
        let auth = RequestAuth::from_header(Some(&authorization));
        let Some(key) = auth.bucket() else {
            return self.refuse_init(4403, "Forbidden").await;
        };
        let state = self.state().clone();
        let principal = match auth.resolve(&state.keys).await {
            Ok(principal) => principal,
            Err(AppError::Unauthenticated) => return self.refuse_init(4403, "Forbidden").await,
            Err(e) => {
                tracing::warn!(error = %e.message(), "resolving a WebSocket key failed");
                return close(1011, "Internal error");
            }
        };
        let key_slot = match self.key_slot.take() {
            Some(slot) if slot.key() == key => slot,
            other => {
                // The payload's key is not the header's: count it instead.
                drop(other);
                let limits = &state.config.subscriptions;
                match self.endpoint.served.sockets.admit_key(&key, limits) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        return self.refuse_init(4429, &refusal.message(limits)).await;
                    }
                }
            }
        };
        let mut data = async_graphql::Data::default();
        data.insert(principal);
        self.ready = Some(Ready {
            key: key_slot,
            authorization,
            data: Arc::new(data),
        });
        self.send("connection_ack", None, None::<()>).await
    }

    /// Refuses `connection_init`: the legacy protocol first gets a `connection_error`.
    async fn refuse_init(&mut self, code: u16, reason: &str) -> Flow {
        if self.protocol == Protocol::Legacy {
            let payload = json!({ "message": reason });
            if let Flow::End = self.send("connection_error", None, Some(payload)).await {
                return Flow::End;
            }
        }
        close(code, reason)
    }

    /// `subscribe`: the caps, then the operation.
    async fn subscribe(&mut self, id: String, bytes: &[u8]) -> Flow {
        if self.active.contains_key(&id) {
            return Flow::Close(4409, format!("Subscriber for {id} already exists"));
        }
        let Some(ready) = &self.ready else {
            return close(4401, "Unauthorized");
        };
        let state = &self.endpoint.served.state;
        let limits = &state.config.subscriptions;
        let slot = match self.endpoint.served.sockets.start_subscription(
            &ready.key,
            self.active.len(),
            limits,
        ) {
            Ok(slot) => slot,
            Err(refusal) => {
                let error = json!({
                    "message": refusal.message(limits),
                    "extensions": { "code": "RATE_LIMITED" },
                });
                let payload = match self.protocol {
                    Protocol::TransportWs => json!([error]),
                    Protocol::Legacy => error,
                };
                return self.send("error", Some(&id), Some(payload)).await;
            }
        };
        let mut request = match serde_json::from_slice::<WithPayload<async_graphql::Request>>(bytes)
        {
            Ok(WithPayload {
                payload: Some(request),
            }) => request,
            _ => return close(4400, "Invalid message"),
        };
        // Per operation: the key again (through the cache, so a revoked key starts nothing new),
        // then the same admission as an HTTP request before anything is parsed further.
        let auth = RequestAuth::from_header(Some(&ready.authorization));
        let served = &self.endpoint.served;
        let admitted = match auth.resolve(&served.state.keys).await {
            Ok(principal) => crate::graphql_http::admit(served, &mut request, &principal),
            Err(err) => Err(err),
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(err) => {
                let mut error = err.to_server_error();
                crate::error::classify_error(&mut error);
                let error = serde_json::to_value(&error).unwrap_or(Value::Null);
                let payload = match self.protocol {
                    Protocol::TransportWs => json!([error]),
                    Protocol::Legacy => error,
                };
                return self.send("error", Some(&id), Some(payload)).await;
            }
        };
        // Charged like an HTTP request; a refused operation answers with one response carrying
        // the `RATE_LIMITED` error, then completes.
        let window = served
            .state
            .rate_limit
            .charge_request(&auth, admitted.cost)
            .await;
        let root_keys = admitted.root_keys;
        let stream = match window.filter(|w| w.refused) {
            Some(window) => {
                let error = crate::ratelimit::refusal(&window, admitted.cost);
                futures_util::stream::once(async move {
                    async_graphql::Response::from_errors(vec![error])
                })
                .boxed()
            }
            None => {
                // DataLoaders that live as long as this subscription, not the socket.
                let request = request
                    .data(auth)
                    .data(crate::request::RequestScope::default());
                served
                    .schema
                    .execute_stream_with_session_data(request, ready.data.clone())
                    .map(move |mut response| {
                        crate::error::classify_errors(&mut response);
                        crate::graphql_http::reorder_root(&mut response.data, &root_keys);
                        response
                    })
                    .boxed()
            }
        };
        let (stream, abort) = futures_util::stream::abortable(stream);
        self.generation += 1;
        let generation = self.generation;
        let (tag, last) = (id.clone(), id.clone());
        let tagged = stream
            .map(move |response| (tag.clone(), generation, Some(response)))
            .chain(futures_util::stream::once(async move {
                (last, generation, None)
            }));
        self.operations.push(tagged.boxed());
        self.active.insert(
            id,
            Active {
                generation,
                abort,
                _slot: slot,
            },
        );
        Flow::Continue
    }

    /// An operation's response, or its end.
    async fn on_operation(&mut self, (id, generation, item): OperationItem) -> Flow {
        // Output of an operation the client completed (its id may be reused since) is dropped.
        if self.active.get(&id).map(|a| a.generation) != Some(generation) {
            return Flow::Continue;
        }
        match item {
            Some(response) => {
                let kind = self.protocol.next();
                self.send(kind, Some(&id), Some(response)).await
            }
            None => {
                self.active.remove(&id);
                self.send("complete", Some(&id), None::<()>).await
            }
        }
    }

    /// Ends the connection, and every subscription on it, once its key is revoked or expired.
    async fn on_key_check(&mut self) -> Flow {
        let Some(ready) = &self.ready else {
            return Flow::Continue;
        };
        let auth = RequestAuth::from_header(Some(&ready.authorization));
        match auth.resolve(&self.endpoint.served.state.keys).await {
            Ok(_) => Flow::Continue,
            Err(AppError::Unauthenticated) => close(4403, "Forbidden"),
            // The database is unreachable for a moment: the key was valid, keep serving.
            Err(e) => {
                tracing::warn!(error = %e.message(), "re-checking a WebSocket key failed");
                Flow::Continue
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        if self.last_heard.elapsed() > PEER_TIMEOUT {
            tracing::debug!("dropping a silent WebSocket peer");
            return Flow::End;
        }
        self.control(Control::Ping, b"").await
    }

    /// Sends one protocol message; a peer that leaves it unread for [`PEER_TIMEOUT`] is gone.
    async fn send<P: Serialize>(
        &mut self,
        kind: &str,
        id: Option<&str>,
        payload: Option<P>,
    ) -> Flow {
        let text = match serde_json::to_string(&Out { kind, id, payload }) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "serializing a WebSocket message failed");
                return close(1011, "Internal error");
            }
        };
        match tokio::time::timeout(PEER_TIMEOUT, self.session.text(text)).await {
            Ok(Ok(())) => Flow::Continue,
            _ => Flow::End,
        }
    }

    /// Sends a ping or pong frame, with the same timeout as [`Self::send`].
    async fn control(&mut self, kind: Control, bytes: &[u8]) -> Flow {
        let session = &mut self.session;
        let sent = async {
            match kind {
                Control::Ping => session.ping(bytes).await,
                Control::Pong => session.pong(bytes).await,
            }
        };
        match tokio::time::timeout(PEER_TIMEOUT, sent).await {
            Ok(Ok(())) => Flow::Continue,
            _ => Flow::End,
        }
    }
}

#[derive(Clone, Copy)]
enum Control {
    Ping,
    Pong,
}
