//! The web's CommunicationManager pattern between two processes: a page and a worker
//! that register handlers by message type, make requests that wait for their response
//! with a 5 s timeout, and send notifications that expect no answer.
//!
//! The example runs itself twice. The parent (the page) creates the named channel
//! `/dev/shm/<name>` and re-executes its own binary as `--child <name>`; the child (the
//! worker) opens the channel. Both sides put a `CommunicationManager` on their port, so
//! each can ask the other. Then both join a `BroadcastChannel`, where a request reaches
//! every other manager and the first answer wins, and a notification reaches everyone
//! but its sender.
//!
//! Run with `cargo run --example communication_manager`.

use ringport::broadcast::BroadcastChannel;
use ringport::rpc::{CommunicationManager, RequestError};
use ringport::MessageChannel;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// How long either side waits for a step of the other before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error>;

/// `math.sum`: the sum of the space-separated integers in the payload.
fn sum(payload: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
    let mut total = 0i64;
    for word in text.split_whitespace() {
        let n: i64 = word
            .parse()
            .map_err(|_| format!("{word:?} is not an integer"))?;
        total = total.checked_add(n).ok_or("the sum overflows")?;
    }
    Ok(total.to_string().into_bytes())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn child(name: &str) -> Result<(), Error> {
    let me = format!("  [worker {}]", std::process::id());
    let worker = CommunicationManager::over_port(MessageChannel::open(name)?);
    worker.register_handler("math.sum", sum)?;
    worker.register_handler("worker.slow", |payload: &[u8]| {
        // Longer than the page is willing to wait: its request times out, and this
        // late answer is dropped on arrival.
        std::thread::sleep(Duration::from_millis(300));
        Ok::<_, String>(payload.to_vec())
    })?;
    // What the page tells the worker arrives on two dispatcher threads (port and
    // broadcast channel), in either order: the worker waits for both.
    let (events, heard) = mpsc::channel();
    let quit = events.clone();
    worker.on_notification("page.shutdown", move |_: &[u8]| {
        let _ = quit.send("shutdown");
    })?;

    // Ask the page something: requests go both ways.
    let title = worker.request("page.title", b"")?;
    println!("{me} the page's title is {:?}", text(&title));

    // Join the broadcast channel, answer roll calls there, and hear the page's news.
    let tabs = CommunicationManager::over_broadcast(BroadcastChannel::new(name)?)?;
    let me_too = me.clone();
    tabs.register_handler("roll.call", move |_: &[u8]| {
        Ok::<_, String>(format!("worker {}", std::process::id()).into_bytes())
    })?;
    tabs.on_notification("theme.changed", move |theme: &[u8]| {
        println!(
            "{me_too} heard on the broadcast channel: theme is now {:?}",
            text(theme)
        );
        let _ = events.send("theme");
    })?;
    worker.broadcast("worker.ready", b"")?;

    let mut seen = [heard.recv_timeout(PATIENCE)?, heard.recv_timeout(PATIENCE)?];
    seen.sort_unstable();
    if seen != ["shutdown", "theme"] {
        return Err(format!("unexpected notifications {seen:?}").into());
    }
    println!("{me} shutting down");
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice() {
        if flag == "--child" {
            return child(name);
        }
    }

    let name = format!("ringport-cm-{}", std::process::id());
    let page = CommunicationManager::over_port(MessageChannel::create(&name, 1 << 16)?);
    page.register_handler("page.title", |_: &[u8]| {
        Ok::<_, String>(b"ringport demo".to_vec())
    })?;
    let (ready, worker_ready) = mpsc::channel();
    page.on_notification("worker.ready", move |_: &[u8]| {
        let _ = ready.send(());
    })?;
    let tabs = CommunicationManager::over_broadcast(BroadcastChannel::new(&name)?)?;

    let mut worker = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .spawn()?;
    println!("[page] started worker process {}", worker.id());
    worker_ready.recv_timeout(PATIENCE)?;
    println!("[page] the worker says it is ready");

    // Requests with the default 5 s timeout.
    let total = page.request("math.sum", b"1 2 3 4")?;
    println!("[page] math.sum(1 2 3 4) = {}", text(&total));
    match page.request("math.sum", b"1 two") {
        Err(RequestError::Remote(message)) => println!("[page] math.sum(1 two) failed: {message}"),
        other => return Err(format!("expected the handler's error, got {other:?}").into()),
    }
    match page.request("math.divide", b"1 0") {
        Err(e @ RequestError::NoHandler { .. }) => println!("[page] math.divide: {e}"),
        other => return Err(format!("expected no handler, got {other:?}").into()),
    }
    // A request with a shorter timeout than the handler needs.
    match page.request_timeout("worker.slow", b"zzz", Duration::from_millis(50)) {
        Err(RequestError::Timeout) => println!(
            "[page] worker.slow timed out after 50 ms; pending requests: {}",
            page.pending()
        ),
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    // The slow handler's late answer arrives before this one and is dropped.
    let total = page.request("math.sum", b"40 2")?;
    println!("[page] math.sum(40 2) = {}", text(&total));

    // Over the broadcast channel: a request reaches every other manager, the first
    // answer wins; a notification reaches everyone but its sender.
    let who = tabs.request("roll.call", b"")?;
    println!(
        "[page] roll call on the broadcast channel answered by {}",
        text(&who)
    );
    tabs.broadcast("theme.changed", b"dark")?;

    page.broadcast("page.shutdown", b"")?;
    let status = worker.wait()?;
    println!(
        "[page] worker exited: {status}; pending requests: {}",
        page.pending()
    );
    if !status.success() {
        return Err("the worker failed".into());
    }
    Ok(())
}
