//! Kernel paths between processes: a Unix socket pair and a pair of pipes, each carrying
//! 8-byte messages with one `write` and one `read` per message.
//!
//! Both reach the child through its standard streams, which needs neither a name nor
//! inherited descriptor numbers: the socket's far end becomes the child's stdin; for the
//! pipes, the child reads its stdin and writes its stdout (its report follows the data).

use crate::child::ChildGuard;
use crate::rtt::{CrossProcess, Link};
use crate::Result;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;

/// Reads one 8-byte message.
fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// A stream of this process's stdin or stdout that bypasses std's buffering.
fn raw(fd: impl AsFd) -> Result<File> {
    Ok(File::from(fd.as_fd().try_clone_to_owned()?))
}

/// One end of a Unix stream socket pair.
pub struct Socket(UnixStream);

impl Link for Socket {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.0.write_all(&v.to_ne_bytes())?)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        read_u64(&mut self.0)
    }
}

impl CrossProcess for Socket {
    type Pending = UnixStream;
    type Host = Socket;
    type Guest = Socket;

    fn prepare(_name: &str) -> Result<(UnixStream, Stdio)> {
        let (mine, theirs) = UnixStream::pair()?;
        Ok((mine, Stdio::from(OwnedFd::from(theirs))))
    }

    fn connect(pending: UnixStream, _child: &mut ChildGuard) -> Result<Socket> {
        Ok(Socket(pending))
    }

    fn guest(_name: &str) -> Result<Socket> {
        Ok(Socket(UnixStream::from(OwnedFd::from(raw(
            std::io::stdin(),
        )?))))
    }
}

/// One end of two pipes, one per direction.
pub struct Pipe {
    rx: File,
    tx: File,
}

impl Link for Pipe {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.tx.write_all(&v.to_ne_bytes())?)
    }

    #[inline]
    fn recv(&mut self) -> Result<u64> {
        read_u64(&mut self.rx)
    }
}

impl CrossProcess for Pipe {
    type Pending = ();
    type Host = Pipe;
    type Guest = Pipe;

    fn prepare(_name: &str) -> Result<((), Stdio)> {
        Ok(((), Stdio::piped()))
    }

    fn connect((): (), child: &mut ChildGuard) -> Result<Pipe> {
        Ok(Pipe {
            rx: child.stdout_data()?,
            tx: File::from(OwnedFd::from(child.take_stdin()?)),
        })
    }

    fn guest(_name: &str) -> Result<Pipe> {
        Ok(Pipe {
            rx: raw(std::io::stdin())?,
            tx: raw(std::io::stdout())?,
        })
    }
}
