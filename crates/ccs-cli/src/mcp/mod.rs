//! `ccs mcp`: a stdio MCP server (rmcp) through which a model acts as one agent of a segment.
//!
//! One process is one agent, attached for the process's lifetime. Stdout carries the protocol
//! (newline-delimited JSON-RPC); everything the server says for humans goes to stderr. Every
//! tool result is one text content holding a JSON object; domain refusals (a conflict, a held
//! artifact, ...) are tool results with `isError: true` and `{"error": KIND, "message": ...}`
//! (see [`reply`]), never protocol errors, so the model can read and act on them.
//!
//! The server ends when stdin closes: it releases the holds it kept (dropping the guards), lets
//! waits in flight notice within [`WAIT_SLICE`], and detaches the agent.

mod arguments;
mod mirror;
mod reply;

use ccs_protocol::sync::{AtomicBool, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agent_coherence::{Agent, OpenOptions, WriteGuard};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt as _, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::args::McpArgs;
use crate::error::{CliError, EXIT_OK};
use crate::status_view;
use mirror::{FileState, Mirror};
use reply::{Refusal, finish, key_version};

/// The longest `wait_changed` a model may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// How often a blocked `wait_changed` checks whether its caller went away.
const WAIT_SLICE: Duration = Duration::from_millis(200);

/// How often a wait on a key that does not exist yet looks again, where the backend cannot
/// sleep until its first write.
const FIRST_WRITE_POLL: Duration = Duration::from_millis(20);

/// What the server tells the model when it connects.
const INSTRUCTIONS: &str = "\
Shared artifacts with cache coherence: several agents read and write the same keys, and every \
write is checked against what the writer last read. Read before you write: `write` is refused \
with error `conflict` if someone wrote the key since your last `read`; then `read` it again, \
redo your change on the new content, and `write` again. Use `check` to see cheaply whether your \
copy is still current, `wait_changed` to block until someone changes a key, and \
`acquire`/`commit`/`release` to hold a key exclusively for a multi-step edit. Every result is a \
JSON object; a refusal has an `error` kind and a `message` saying what to do.";

/// Run `ccs mcp` until stdin closes.
pub fn run(args: &McpArgs) -> Result<u8, CliError> {
    let segment = OpenOptions::new()
        .allow_other_owner(args.segment.allow_other_owner)
        .open(&args.segment.seg)?;
    let max_payload = segment.config().max_payload;
    let agent = Arc::new(segment.attach(&args.agent)?);
    let state = Arc::new(State {
        max_content: args.max_content.unwrap_or(max_payload),
        mirror: args.mirror.clone().map(Mirror::new),
        holds: Mutex::new(HashMap::new()),
        closing: AtomicBool::new(false),
        agent,
    });
    log(&format!(
        "serving segment `{}` as agent `{}` on stdio",
        segment.location(),
        args.agent
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Stdio {
            action: "start the async runtime",
            source,
        })?;
    let server = Server {
        state: Arc::clone(&state),
        tool_router: Server::tool_router(),
    };
    let input = EofSignal {
        inner: tokio::io::stdin(),
        state: Arc::clone(&state),
    };
    let outcome = runtime.block_on(async move {
        match server.serve((input, tokio::io::stdout())).await {
            Ok(running) => running
                .waiting()
                .await
                .map(|reason| log(&format!("session ended ({reason:?})")))
                .map_err(|e| e.to_string()),
            // A client that goes away before initializing is an ordinary end of a session.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(why)) => {
                log(&format!(
                    "the client closed the connection before initializing ({why})"
                ));
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    });
    // Let blocked waits return (they poll `closing`), release the holds, then detach.
    state.closing.store(true, Ordering::Relaxed);
    state.holds().clear();
    runtime.shutdown_timeout(WAIT_SLICE * 5);
    drop(state);
    match outcome {
        Ok(()) => Ok(EXIT_OK),
        Err(message) => Err(CliError::Usage(format!("mcp: {message}"))),
    }
}

/// Say something to a person on stderr, prefixed `ccs mcp: `. Never fails: the client may
/// have closed the server's stderr (a `eprintln!` would then panic on EPIPE, and the call being
/// answered would never be), and logging must never take the server down.
pub(crate) fn log(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "ccs mcp: {text}");
}

/// What every request shares: the agent, its holds, the mirror.
struct State {
    agent: Arc<Agent>,
    max_content: u64,
    mirror: Option<Mirror>,
    /// Holds taken with `acquire`, by key, until `commit`, `release` or the end of the session.
    holds: Mutex<HashMap<String, WriteGuard<Arc<Agent>>>>,
    /// 1 once the session ends (stdin closed), so that waits in flight stop. A stop flag only:
    /// no data is published through it, so `Relaxed` stores and loads suffice (the wait polls
    /// it every [`WAIT_SLICE`]).
    closing: AtomicBool,
}

impl State {
    fn holds(&self) -> MutexGuard<'_, HashMap<String, WriteGuard<Arc<Agent>>>> {
        // Poison is harmless here: the map is only inserted into and removed from.
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decode `content` and check its size against the server's limit.
    fn content(&self, content: &str, encoding: Option<&str>) -> Result<Vec<u8>, Refusal> {
        let bytes = match encoding.unwrap_or("utf-8") {
            "utf-8" | "utf8" | "text" => content.as_bytes().to_vec(),
            "base64" => BASE64
                .decode(content)
                .map_err(|e| Refusal::bad_request(format!("content is not valid base64: {e}")))?,
            other => {
                return Err(Refusal::bad_request(format!(
                    "unknown encoding `{other}`: use \"utf-8\" or \"base64\""
                )));
            }
        };
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > self.max_content {
            return Err(Refusal::too_large(size, self.max_content));
        }
        Ok(bytes)
    }

    /// Before writing `key`: the mirror path, refusing to overwrite a file edited outside.
    fn mirror_check(&self, key: &str, bytes: &[u8]) -> Result<Option<std::path::PathBuf>, Refusal> {
        self.mirror
            .as_ref()
            .map(|mirror| mirror.check_write(key, bytes))
            .transpose()
    }

    /// After writing `key`: store the content in the mirror; the reply, with a mirror error if
    /// storing failed (the write itself succeeded).
    fn written(
        &self,
        key: &str,
        version: u64,
        bytes: &[u8],
        path: Option<&std::path::Path>,
    ) -> Value {
        let mut reply = key_version(key, version);
        if let (Some(mirror), Some(path)) = (&self.mirror, path)
            && let Err(error) = mirror.store(key, path, version, bytes)
        {
            log(&format!("mirror: {error}"));
            reply["mirror"] = json!({ "path": path.display().to_string(), "error": error });
        }
        reply
    }

    fn read(&self, key: &str) -> Result<Value, Refusal> {
        let read = self.agent.get(key)?;
        let (encoding, content_type, content) = match std::str::from_utf8(&read.bytes) {
            Ok(text) => ("utf-8", "text/plain; charset=utf-8", text.to_owned()),
            Err(_) => (
                "base64",
                "application/octet-stream",
                BASE64.encode(&read.bytes),
            ),
        };
        let mut reply = json!({
            "key": key,
            "version": read.version,
            "hit": read.hit,
            "encoding": encoding,
            "content_type": content_type,
            "content": content,
            "size": read.bytes.len(),
        });
        // Keys that cannot be mirrored are still readable; they are just not mirrored.
        if let Some(mirror) = &self.mirror
            && let Ok(path) = mirror.path(key)
        {
            match mirror.state(key, &path)? {
                // A file identical to the artifact (say, from an earlier session) is ours.
                FileState::EditedOutside(hash) if Mirror::same(&hash, &read.bytes) => {
                    mirror.adopt(key, read.version, &read.bytes);
                }
                FileState::EditedOutside(_) => {
                    reply["mirror"] =
                        json!({ "path": path.display().to_string(), "edited_outside": true });
                }
                FileState::Ours(version) if version >= read.version => {}
                FileState::Missing | FileState::Ours(_) => {
                    if let Err(error) = mirror.store(key, &path, read.version, &read.bytes) {
                        log(&format!("mirror: {error}"));
                        reply["mirror"] =
                            json!({ "path": path.display().to_string(), "error": error });
                    }
                }
            }
        }
        Ok(reply)
    }

    fn write(&self, params: &WriteParams) -> Result<Value, Refusal> {
        let bytes = self.content(&params.content, params.encoding.as_deref())?;
        let path = self.mirror_check(&params.key, &bytes)?;
        let version = match params.expected_version {
            Some(expected) => self.agent.put_if(params.key.as_str(), expected, &bytes)?,
            None => self.agent.put(params.key.as_str(), &bytes)?,
        };
        Ok(self.written(&params.key, version, &bytes, path.as_deref()))
    }

    fn check(&self, key: &str) -> Result<Value, Refusal> {
        let check = self.agent.check(key)?;
        Ok(json!({
            "key": key,
            "held": check.held,
            "current": check.current,
            "is_current": check.is_current(),
        }))
    }

    fn status(&self) -> Result<Value, Refusal> {
        let segment = self.agent.segment();
        let status = segment.status()?;
        serde_json::to_value(status_view::to_json(segment.location(), &status))
            .map_err(|e| Refusal::new("internal", e.to_string()))
    }

    /// Block (on a blocking thread) until `key` passes `since`, `timeout` passes, the caller
    /// goes away (`cancelled`) or the session ends.
    fn wait(
        &self,
        key: &str,
        since: u64,
        timeout: Duration,
        cancelled: &AtomicBool,
    ) -> Result<Value, Refusal> {
        let deadline = Instant::now() + timeout;
        // Resolving the key gives a never-written key its directory entry (on shared memory),
        // so that the wait sleeps until the first write instead of failing with `not_found`: a
        // sub-agent may wait for a spec its planner has not written yet.
        let artifact = self.agent.key(key)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = left.min(WAIT_SLICE);
            match self.agent.wait_changed(&artifact, since, Some(slice)) {
                Ok(Some(version)) => {
                    return Ok(json!({ "key": key, "changed": true, "version": version }));
                }
                Ok(None) => {}
                // A backend that knows no key before its first write (etcd): look again.
                Err(agent_coherence::Error::NotFound { .. }) => {
                    std::thread::sleep(slice.min(FIRST_WRITE_POLL));
                }
                Err(error) => return Err(error.into()),
            }
            let stop = self.closing.load(Ordering::Relaxed) || cancelled.load(Ordering::Relaxed);
            if left <= slice || stop {
                let version = self.agent.check(key)?.current;
                return Ok(json!({ "key": key, "changed": false, "version": version }));
            }
        }
    }

    fn acquire(&self, key: &str, lease: Duration) -> Result<Value, Refusal> {
        let mut holds = self.holds();
        // Acquiring what this session holds renews the lease; a reclaimed hold is replaced.
        if let Some(guard) = holds.get_mut(key) {
            match guard.renew(lease) {
                Ok(()) => return Ok(key_version(key, guard.version())),
                Err(_) => drop(holds.remove(key)),
            }
        }
        let guard = self.agent.acquire_owned(key, lease)?;
        let version = guard.version();
        holds.insert(key.to_owned(), guard);
        Ok(key_version(key, version))
    }

    fn commit(&self, params: &CommitParams) -> Result<Value, Refusal> {
        let key = params.key.as_str();
        let bytes = self.content(&params.content, params.encoding.as_deref())?;
        if !self.holds().contains_key(key) {
            return Err(Refusal::not_held(key));
        }
        let path = self.mirror_check(key, &bytes)?;
        let guard = self
            .holds()
            .remove(key)
            .ok_or_else(|| Refusal::not_held(key))?;
        let version = guard.commit(&bytes)?;
        Ok(self.written(key, version, &bytes, path.as_deref()))
    }

    fn release(&self, key: &str) -> Result<Value, Refusal> {
        let guard = self
            .holds()
            .remove(key)
            .ok_or_else(|| Refusal::not_held(key))?;
        guard.release()?;
        Ok(json!({ "key": key, "released": true }))
    }
}

/// Stdin that sets [`State::closing`] at end of file: rmcp lets in-flight handlers finish for
/// up to 5 s after EOF, so a blocked `wait_changed` must learn of the EOF to return at once.
struct EofSignal<R> {
    inner: R,
    state: Arc<State>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let eof = buf.filled().len() == before && buf.remaining() > 0;
        if let std::task::Poll::Ready(result) = &polled
            && (result.is_err() || eof)
        {
            self.state.closing.store(true, Ordering::Relaxed);
        }
        polled
    }
}

/// Sets its flag when dropped: tells a blocking wait that its request future went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `read` and `check` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct KeyParams {
    /// The artifact's key, e.g. `notes/plan.md`.
    pub key: String,
}

/// `write` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteParams {
    /// The artifact's key.
    pub key: String,
    /// The new content: text, or base64 when `encoding` is "base64".
    pub content: String,
    /// Write only if the artifact is at exactly this version (0: never written). Without it,
    /// the write is checked against your last read of the key.
    #[serde(default)]
    pub expected_version: Option<u64>,
    /// "utf-8" (default) or "base64".
    #[serde(default)]
    pub encoding: Option<String>,
}

/// `list` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListParams {
    /// Only keys starting with this prefix (default: all keys).
    #[serde(default)]
    pub prefix: String,
}

/// `wait_changed` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitParams {
    /// The artifact's key.
    pub key: String,
    /// Return when the version exceeds this one (usually the version you last read).
    pub since_version: u64,
    /// Give up after this many milliseconds (at most 600000).
    pub timeout_ms: u64,
}

/// `acquire` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AcquireParams {
    /// The artifact's key.
    pub key: String,
    /// How long the hold lasts unless committed or released, in milliseconds.
    pub lease_ms: u64,
}

/// `commit` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CommitParams {
    /// The artifact's key (acquired earlier in this session).
    pub key: String,
    /// The new content: text, or base64 when `encoding` is "base64".
    pub content: String,
    /// "utf-8" (default) or "base64".
    #[serde(default)]
    pub encoding: Option<String>,
}

/// The MCP server: the shared state and rmcp's tool router.
#[derive(Clone)]
struct Server {
    state: Arc<State>,
    tool_router: ToolRouter<Server>,
}

#[tool_router]
impl Server {
    #[tool(
        description = "Read an artifact: returns its content (text, or base64 for binary), version and size. Read a key before you write it; your write is checked against this read."
    )]
    async fn read(&self, Parameters(p): Parameters<KeyParams>) -> CallToolResult {
        finish(self.state.read(&p.key))
    }

    #[tool(
        description = "Write an artifact; returns its new version. Refused with `conflict` if someone wrote it since your last read (re-read, redo, write again); pass expected_version to write only at that exact version."
    )]
    async fn write(&self, Parameters(p): Parameters<WriteParams>) -> CallToolResult {
        finish(self.state.write(&p))
    }

    #[tool(
        description = "Tell whether your copy of an artifact is current without reading it: returns the version you hold, the current version and is_current. Use it to decide whether to read again."
    )]
    async fn check(&self, Parameters(p): Parameters<KeyParams>) -> CallToolResult {
        finish(self.state.check(&p.key))
    }

    #[tool(
        description = "List the keys of existing artifacts, sorted, optionally only those starting with a prefix. Use it to discover what is shared."
    )]
    async fn list(&self, Parameters(p): Parameters<ListParams>) -> CallToolResult {
        finish(
            self.state
                .agent
                .list(&p.prefix)
                .map(|keys| json!({ "keys": keys }))
                .map_err(Refusal::from),
        )
    }

    #[tool(
        description = "Show the segment's state: every agent (alive or not) and each one's cache state on every artifact, as one JSON object. Use it to see who holds or recently wrote what."
    )]
    async fn status(&self) -> CallToolResult {
        finish(self.state.status())
    }

    #[tool(
        description = "Block until an artifact's version exceeds since_version or timeout_ms passes (at most 10 minutes); returns whether it changed and the version. A key nobody has written yet is waited on until its first write (since_version 0). Use it to wait for another agent's write instead of polling."
    )]
    async fn wait_changed(&self, Parameters(p): Parameters<WaitParams>) -> CallToolResult {
        let state = Arc::clone(&self.state);
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(Arc::clone(&cancelled));
        let timeout = Duration::from_millis(p.timeout_ms).min(MAX_WAIT);
        let waited = tokio::task::spawn_blocking(move || {
            state.wait(&p.key, p.since_version, timeout, &cancelled)
        })
        .await
        .unwrap_or_else(|e| Err(Refusal::new("internal", format!("the wait failed: {e}"))));
        finish(waited)
    }

    #[tool(
        description = "Hold an artifact exclusively for lease_ms so no one else can write it during a multi-step edit; returns its version. Finish with commit (write) or release; refused with `held` if another agent holds it."
    )]
    async fn acquire(&self, Parameters(p): Parameters<AcquireParams>) -> CallToolResult {
        finish(
            self.state
                .acquire(&p.key, Duration::from_millis(p.lease_ms)),
        )
    }

    #[tool(
        description = "Write an artifact you acquired and give the hold up; returns the new version. Refused with `fenced` if your lease ran out (nothing written: acquire again)."
    )]
    async fn commit(&self, Parameters(p): Parameters<CommitParams>) -> CallToolResult {
        finish(self.state.commit(&p))
    }

    #[tool(
        description = "Give up a hold taken with acquire without writing. Returns released: true."
    )]
    async fn release(&self, Parameters(p): Parameters<KeyParams>) -> CallToolResult {
        finish(self.state.release(&p.key))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    /// Check the call first ([`arguments`]), so that a refusal names the unknown tool or the
    /// argument of the wrong type; then run it through the router.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let tools = self.tool_router.list_all();
        if let Some(problem) = arguments::problem(&tools, &request.name, request.arguments.as_ref())
        {
            log(&format!("refused (bad_request): {problem}"));
            return Err(rmcp::ErrorData::invalid_params(problem, None));
        }
        let call = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "agent-coherence",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }
}
