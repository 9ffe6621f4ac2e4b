//! The web's MessageSerializer pattern between two processes: a structured value is
//! cloned into plain bytes, while the pool buffers and ports inside it are *transferred*
//! (moved, not copied), like `postMessage(value, transferList)`.
//!
//! The serializer walks the value twice. The first walk only looks: it rejects what
//! cannot be cloned (a function) and a message whose cloned part is too large, with a
//! `DataCloneError`, and hands the value back untouched. The second walk moves every
//! buffer and port into a [`Transfer`] and writes its position in the transfer list into
//! the cloned bytes; the deserializer puts each one back where it was.
//!
//! The example runs itself twice. The parent creates a named pool, a named control
//! channel and a named reply channel, re-executes its own binary as `--child <name>`,
//! and transfers two pool buffers and the reply channel's second port. The child rebuilds
//! the value, checks the buffers in place, answers through the transferred port (sending
//! one buffer back, changed in place), then reports how it refuses tampered messages:
//! duplicated, foreign, forged and replayed handles.
//!
//! Run with `cargo run --release --example structured_clone`.

use ringport::pool::{Buffer, BufferHandle, BufferPool, BufferRecvError, PoolOptions};
use ringport::transfer::wire::{self, WireMessage};
use ringport::transfer::Transfer;
use ringport::{MessageChannel, MessagePort};
use std::fmt;
use std::process::Command;
use std::time::Duration;

/// How long either side waits for the other before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// Cloned bytes are copied through the ring: anything larger belongs in a pool buffer,
/// so the serializer refuses it up front rather than let the port fail later.
const MAX_CLONED: usize = 16 << 10;
/// Deeper nesting is refused: the walks recurse, and a peer's bytes must not overflow
/// the stack.
const MAX_DEPTH: usize = 64;
const PIXELS: usize = 200_000;

type Error = Box<dyn std::error::Error>;

/// A structured value, as `postMessage` takes it.
enum Value {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    /// Cloned: the bytes are copied into the message.
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
    /// Transferred: only a handle travels, the bytes stay in the pool.
    Buffer(Buffer),
    /// Transferred: the sender no longer holds it.
    Port(MessagePort),
    /// Neither cloneable nor transferable, like a JavaScript function.
    Function(String),
}

/// Why a value could not be serialized: the web's `DataCloneError`.
#[derive(Debug, thiserror::Error)]
enum DataCloneError {
    #[error("DataCloneError: {what} at {path} could not be cloned")]
    NotCloneable { path: String, what: String },
    #[error("DataCloneError: {len} cloned bytes exceed the {max}-byte limit (use a pool buffer)")]
    TooLarge { len: usize, max: usize },
}

/// A refusal, with the value given back whole.
struct Refused {
    error: DataCloneError,
    value: Box<Value>,
}

// Tags of the cloned bytes. A buffer or port is written as its index in the transfer list.
const NULL: u8 = 0;
const BOOL: u8 = 1;
const NUMBER: u8 = 2;
const TEXT: u8 = 3;
const BYTES: u8 = 4;
const LIST: u8 = 5;
const MAP: u8 = 6;
const BUFFER: u8 = 7;
const PORT: u8 = 8;

/// The first walk: finds what cannot travel and sums the cloned size, touching nothing.
fn check(v: &Value, path: &str, depth: usize) -> Result<usize, DataCloneError> {
    let refuse = |what: String| DataCloneError::NotCloneable {
        path: path.to_owned(),
        what,
    };
    if depth > MAX_DEPTH {
        return Err(refuse(format!("nesting deeper than {MAX_DEPTH}")));
    }
    Ok(1 + match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::Text(s) => 4 + s.len(),
        Value::Bytes(b) => 4 + b.len(),
        Value::Buffer(_) | Value::Port(_) => 4,
        Value::List(items) => items.iter().enumerate().try_fold(4, |n, (i, item)| {
            Ok::<_, DataCloneError>(n + check(item, &format!("{path}[{i}]"), depth + 1)?)
        })?,
        Value::Map(entries) => entries.iter().try_fold(4, |n, (k, item)| {
            Ok::<_, DataCloneError>(
                n + 4 + k.len() + check(item, &format!("{path}.{k}"), depth + 1)?,
            )
        })?,
        Value::Function(name) => return Err(refuse(format!("function {name}()"))),
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).expect("checked size").to_le_bytes());
}

/// The second walk: clones plain values into `out`, moves transferables into the lists.
fn write(v: Value, out: &mut Vec<u8>, buffers: &mut Vec<Buffer>, ports: &mut Vec<MessagePort>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(b)]),
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Text(s) => {
            out.push(TEXT);
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            put_len(out, b.len());
            out.extend_from_slice(&b);
        }
        Value::List(items) => {
            out.push(LIST);
            put_len(out, items.len());
            items
                .into_iter()
                .for_each(|i| write(i, out, buffers, ports));
        }
        Value::Map(entries) => {
            out.push(MAP);
            put_len(out, entries.len());
            for (k, item) in entries {
                put_len(out, k.len());
                out.extend_from_slice(k.as_bytes());
                write(item, out, buffers, ports);
            }
        }
        Value::Buffer(b) => {
            out.push(BUFFER);
            put_len(out, buffers.len());
            buffers.push(b);
        }
        Value::Port(p) => {
            out.push(PORT);
            put_len(out, ports.len());
            ports.push(p);
        }
        Value::Function(_) => unreachable!("check refuses functions"),
    }
}

/// Serializes `value`, or refuses it whole before anything has moved.
fn serialize(value: Value) -> Result<Transfer, Refused> {
    let checked = check(&value, "value", 0).and_then(|len| match len {
        len if len <= MAX_CLONED => Ok(len),
        len => Err(DataCloneError::TooLarge {
            len,
            max: MAX_CLONED,
        }),
    });
    let len = match checked {
        Ok(len) => len,
        Err(error) => {
            let value = Box::new(value);
            return Err(Refused { error, value });
        }
    };
    let (mut data, mut buffers, mut ports) = (Vec::with_capacity(len), vec![], vec![]);
    write(value, &mut data, &mut buffers, &mut ports);
    let t = buffers
        .into_iter()
        .fold(Transfer::new(data), Transfer::with_buffer);
    Ok(ports.into_iter().fold(t, Transfer::with_port))
}

/// Rebuilds a value from a received message. The bytes come from another process, so
/// every length and index is checked, and each transferable must be used exactly once.
struct Reader {
    data: Vec<u8>,
    at: usize,
    buffers: Vec<Option<Buffer>>,
    ports: Vec<Option<MessagePort>>,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or("the message ends early")?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn len(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }

    fn text(&mut self) -> Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }

    fn slot<T>(list: &mut [Option<T>], i: usize, what: &str) -> Result<T, String> {
        let slot = list.get_mut(i).and_then(Option::take);
        slot.ok_or_else(|| format!("{what} {i} is missing or used twice"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        Ok(match self.take(1)?[0] {
            NULL => Value::Null,
            BOOL => Value::Bool(self.take(1)?[0] != 0),
            NUMBER => Value::Number(f64::from_le_bytes(self.take(8)?.try_into().expect("8"))),
            TEXT => Value::Text(self.text()?),
            BYTES => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            // No capacity is reserved from a count the peer wrote: the items must be there.
            LIST => (0..self.len()?)
                .map(|_| self.value(depth + 1))
                .collect::<Result<_, _>>()
                .map(Value::List)?,
            MAP => (0..self.len()?)
                .map(|_| Ok((self.text()?, self.value(depth + 1)?)))
                .collect::<Result<_, String>>()
                .map(Value::Map)?,
            BUFFER => {
                let i = self.len()?;
                Value::Buffer(Self::slot(&mut self.buffers, i, "buffer")?)
            }
            PORT => {
                let i = self.len()?;
                Value::Port(Self::slot(&mut self.ports, i, "port")?)
            }
            tag => return Err(format!("unknown tag {tag}")),
        })
    }
}

fn deserialize(t: Transfer) -> Result<Value, String> {
    let (data, buffers, ports) = t.into_parts();
    let mut r = Reader {
        data,
        at: 0,
        buffers: buffers.into_iter().map(Some).collect(),
        ports: ports.into_iter().map(Some).collect(),
    };
    let value = r.value(0)?;
    if r.at != r.data.len() {
        return Err("bytes after the value".into());
    }
    // Anything left over is dropped with `r`: buffers go back to the pool, ports close.
    if r.buffers.iter().any(Option::is_some) || r.ports.iter().any(Option::is_some) {
        return Err("the transfer list holds what the value never names".into());
    }
    Ok(value)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes, cloned>", b.len()),
            Value::Buffer(b) => write!(f, "<pool buffer {}: {} bytes>", b.index(), b.len()),
            Value::Port(_) => write!(f, "<port>"),
            Value::Function(name) => write!(f, "{name}()"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "]")
            }
            Value::Map(entries) => {
                write!(f, "{{")?;
                for (i, (k, item)) in entries.iter().enumerate() {
                    write!(f, "{}{k}: {item}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// Removes and returns the entry `key` of a map.
fn field(map: &mut Value, key: &str) -> Result<Value, Error> {
    let Value::Map(entries) = map else {
        return Err("not a map".into());
    };
    let at = entries.iter().position(|(k, _)| k == key);
    Ok(entries
        .remove(at.ok_or_else(|| format!("no field {key:?}"))?)
        .1)
}

fn names(base: &str) -> [String; 3] {
    ["pool", "ctl", "reply"].map(|what| format!("{base}-{what}"))
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn serialize_or_fail(value: Value) -> Result<Transfer, Error> {
    serialize(value).map_err(|r| r.error.into())
}

fn child(base: &str) -> Result<(), Error> {
    let [pool_name, ctl_name, _] = names(base);
    let pool = BufferPool::open(&pool_name)?;
    let pools = std::slice::from_ref(&pool);
    let mut ctl = MessageChannel::open(&ctl_name)?;

    let mut value = deserialize(ctl.recv_transfer_timeout(pools, PATIENCE)?)?;
    println!("  [child] rebuilt {value}");
    let (Value::Buffer(mut pixels), Value::Port(mut reply), mut meta) = (
        field(&mut value, "pixels")?,
        field(&mut value, "reply")?,
        field(&mut value, "meta")?,
    ) else {
        return Err("the value does not have the expected shape".into());
    };
    let Value::Buffer(caption) = field(&mut meta, "caption")? else {
        return Err("the caption is not a buffer".into());
    };
    // These are the parent's bytes, read where it wrote them: nothing was copied.
    if pixels.iter().enumerate().any(|(i, &b)| b != pattern(i)) {
        return Err("the pixels differ from what the parent wrote".into());
    }
    let caption = text(&caption);
    println!(
        "  [child] checked {} pixel bytes in place; caption {caption:?}",
        pixels.len()
    );
    // What the parent queued on the port before it moved is waiting here, in order.
    println!(
        "  [child] the transferred port's queue: {:?}",
        text(&reply.recv_timeout(PATIENCE)?)
    );
    pixels.iter_mut().for_each(|b| *b = 255 - *b);
    let answer = Value::Map(vec![
        ("checked".into(), Value::Number(pixels.len() as f64)),
        ("caption".into(), Value::Text(caption.to_uppercase())),
        ("inverted".into(), Value::Buffer(pixels)),
    ]);
    reply
        .post_transfer(serialize_or_fail(answer)?)
        .map_err(|e| e.error)?;

    // The parent now plays a hostile peer. A refused message is consumed whole.
    let mut held = None;
    loop {
        match ctl.recv_transfer_timeout(pools, PATIENCE) {
            Ok(t) => match deserialize(t)? {
                Value::Buffer(b) => {
                    println!("  [child] accepted buffer {}: {:?}", b.index(), text(&b));
                    held = Some(b);
                }
                Value::Text(s) if s == "bye" => return Ok(()),
                other => return Err(format!("unexpected message {other}").into()),
            },
            Err(BufferRecvError::Transfer(e)) => {
                let kind = format!("{e:?}");
                let kind = kind.split([' ', '(']).next().unwrap_or_default();
                println!("  [child] refused ({kind}): {e}");
                // Returning the buffer bumps its generation: a later replay finds it stale.
                drop(held.take());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A copy of `h` with the `u32` at byte `offset` rewritten, as a peer writing raw bytes
/// can do. `BufferHandle` is `repr(C)`: pool id, length, then index at 16, generation
/// at 20, sender at 24, flags at 28.
fn patch(h: BufferHandle, offset: usize, f: impl FnOnce(u32) -> u32) -> BufferHandle {
    let mut raw = bytemuck::bytes_of(&h).to_vec();
    let old = u32::from_le_bytes(raw[offset..offset + 4].try_into().expect("4 bytes"));
    raw[offset..offset + 4].copy_from_slice(&f(old).to_le_bytes());
    bytemuck::pod_read_unaligned(&raw)
}

/// Writes the wire format by hand, as a buggy or hostile peer would, to show what the
/// receiver refuses.
fn tamper(pool: &BufferPool, ctl: &mut MessagePort) -> Result<(), Error> {
    let mut probe = pool.try_loan(5)?;
    probe.copy_from_slice(b"probe");
    let (data, mut buffers, _) = serialize_or_fail(Value::Buffer(probe))?.into_parts();
    let h = buffers.pop().ok_or("no buffer")?.into_handle();
    let stranger = BufferPool::new(PoolOptions::default())?;
    let foreign = stranger.try_loan(5)?.into_handle();
    ctl.post_message(b"not a transfer message at all")?;
    for buffers in [
        vec![h, h],
        vec![foreign],
        vec![patch(h, 16, |_| 9999)],
        // Another participant's number (of the default 64): it never sent this buffer.
        vec![patch(h, 24, |sender| sender % 64 + 1)],
        // Genuine, then replayed while the child holds it, then after it dropped it.
        vec![h],
        vec![h],
        vec![h],
    ] {
        let m = WireMessage {
            data: data.clone(),
            buffers,
            ports: vec![],
        };
        ctl.post_message(&wire::encode(&m))?;
    }
    Ok(())
}

fn parent() -> Result<(), Error> {
    let base = format!("ringport-sc-{}", std::process::id());
    let [pool_name, ctl_name, reply_name] = names(&base);
    let pool = BufferPool::create(
        &pool_name,
        PoolOptions::with_classes(&[(4096, 4), (256 << 10, 2)]),
    )?;
    let pools = std::slice::from_ref(&pool);
    let mut ctl = MessageChannel::create(&ctl_name, 1 << 16)?;
    let mut mine = MessageChannel::create(&reply_name, 1 << 16)?;
    let theirs = MessageChannel::open(&reply_name)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", &base])
        .spawn()?;
    println!("[parent] started child process {}", child.id());

    let mut pixels = pool.try_loan(PIXELS)?;
    pixels
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = pattern(i));
    let mut caption = pool.try_loan(12)?;
    caption.copy_from_slice(b"sunset, Oslo");
    let meta = Value::Map(vec![
        ("caption".into(), Value::Buffer(caption)),
        (
            "tags".into(),
            Value::List(vec![Value::Text("sky".into()), Value::Text("sea".into())]),
        ),
        ("draft".into(), Value::Bool(false)),
        ("parent".into(), Value::Null),
    ]);
    let value = Value::Map(vec![
        ("kind".into(), Value::Text("frame".into())),
        ("id".into(), Value::Number(7.0)),
        ("thumbnail".into(), Value::Bytes(vec![9; 48])),
        ("pixels".into(), Value::Buffer(pixels)),
        ("meta".into(), meta),
        ("reply".into(), Value::Port(theirs)),
        ("on_click".into(), Value::Function("redraw".into())),
    ]);

    // A function cannot be cloned: the value comes back whole, nothing has moved.
    let mut value = match serialize(value) {
        Err(Refused { error, value }) => {
            println!("[parent] {error}");
            *value
        }
        Ok(_) => return Err("a function was serialized".into()),
    };
    field(&mut value, "on_click")?;
    println!("[parent] without on_click: {value}");

    let big = Value::List(vec![Value::Bytes(vec![0; PIXELS])]);
    match serialize(big) {
        Err(r) => println!("[parent] {}", r.error),
        Ok(_) => return Err("an oversized message was serialized".into()),
    }

    // The port checks what the serializer cannot know: a heap port cannot leave this
    // process. The message comes back with the error, still the sender's.
    let local = MessageChannel::new();
    let stray = Value::List(vec![Value::Text("local".into()), Value::Port(local.port2)]);
    match ctl.post_transfer(serialize_or_fail(stray)?) {
        Err(e) => println!(
            "[parent] post_transfer refused: {}; given back: {}",
            e.error,
            deserialize(e.message)?
        ),
        Ok(()) => return Err("a heap port was posted to another process".into()),
    }

    mine.post_message(b"queued before the port moved")?;
    let msg = serialize_or_fail(value)?;
    println!(
        "[parent] posting {} cloned bytes, {} buffers and {} port",
        msg.data().len(),
        msg.buffers().len(),
        msg.ports().len()
    );
    // The buffers and the port moved into the message: this process can no longer
    // touch them, the web's detach.
    ctl.post_transfer(msg).map_err(|e| e.error)?;

    let mut answer = deserialize(mine.recv_transfer_timeout(pools, PATIENCE)?)?;
    println!("[parent] the child answered {answer}");
    let Value::Buffer(inverted) = field(&mut answer, "inverted")? else {
        return Err("no buffer in the answer".into());
    };
    if inverted
        .iter()
        .enumerate()
        .any(|(i, &b)| b != 255 - pattern(i))
    {
        return Err("the returned pixels are not inverted".into());
    }
    println!(
        "[parent] buffer {} came back inverted in place",
        inverted.index()
    );
    drop(inverted); // back to the pool

    tamper(&pool, &mut ctl)?;
    ctl.post_transfer(serialize_or_fail(Value::Text("bye".into()))?)
        .map_err(|e| e.error)?;
    let status = child.wait()?;
    println!("[parent] child exited: {status}");
    if !status.success() {
        return Err("the child failed".into());
    }
    let free = pool.available();
    println!("[parent] free buffers per class: {free:?}");
    if free != [4, 2] {
        return Err("buffers are missing from the pool".into());
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, base] = args.as_slice() {
        if flag == "--child" {
            return child(base);
        }
    }
    parent()
}
