//! iceoryx2 publish-subscribe as a peer of the zero-copy transfer rows (feature
//! `iceoryx2`): the parent publishes messages in full in loaned samples of `[u8]`, the
//! child subscribes and reads them in place, as the zero-copy row does with pool buffers.
//!
//! The service is named after the row's segment name and holds [`depth`] samples per
//! subscriber with `UnableToDeliverStrategy::Block`, so nothing is lost and the pipeline
//! is as deep as the other paths'. iceoryx2 keeps its own files (`/dev/shm/iox2_*`,
//! `/tmp/iceoryx2`): a run killed mid-row leaves them for iceoryx2's stale-node cleanup,
//! not for the watchdog.

use crate::bench::Plan;
use crate::tput::{consume_frames, NamedStream, Stream};
use crate::transfer::{check_message, depth, fill_byte, stamp};
use crate::Result;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe;
use std::hint::spin_loop;

/// The thread-safe flavour: the harness's ends must be `Send`.
type Svc = ipc_threadsafe::Service;

/// The publishing end (fields drop in order: ports before their service and node).
pub struct IceTx {
    publisher: Publisher<Svc, [u8], ()>,
    service: publish_subscribe::PortFactory<Svc, [u8], ()>,
    _node: Node<Svc>,
}

/// The subscribing end.
pub struct IceRx {
    subscriber: Subscriber<Svc, [u8], ()>,
    _service: publish_subscribe::PortFactory<Svc, [u8], ()>,
    _node: Node<Svc>,
}

/// Messages in full through iceoryx2: the producer writes each in a loaned sample of
/// `SIZE` bytes and sends it, the consumer reads it in place.
pub struct Iceoryx2<const SIZE: usize>;

/// A node, with iceoryx2's own logging quieted to errors (it would interleave with the
/// report).
fn node() -> Result<Node<Svc>> {
    set_log_level(LogLevel::Error);
    Ok(NodeBuilder::new().create::<Svc>()?)
}

impl<const SIZE: usize> Stream for Iceoryx2<SIZE> {
    type Tx = IceTx;
    type Rx = IceRx;

    fn produce(tx: &mut IceTx, plan: &Plan) -> Result<()> {
        for seq in 0..plan.total() {
            let sample = tx.publisher.loan_slice_uninit(plan.frame)?;
            let mut sample = sample.write_from_fn(|_| fill_byte(seq));
            stamp(sample.payload_mut(), seq);
            sample.send()?;
        }
        Ok(())
    }

    fn consume(rx: &mut IceRx, plan: &Plan) -> Result<Vec<u64>> {
        let len = plan.frame;
        consume_frames(plan, |seq| match rx.subscriber.receive()? {
            Some(sample) => check_message(sample.payload(), seq, len).map(|()| true),
            None => Ok(false),
        })
    }
}

impl<const SIZE: usize> NamedStream for Iceoryx2<SIZE> {
    fn host(name: &str) -> Result<IceTx> {
        let node = node()?;
        let service = node
            .service_builder(&ServiceName::new(name)?)
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(depth(SIZE))
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(false)
            .create()?;
        let publisher = service
            .publisher_builder()
            .initial_max_slice_len(SIZE)
            .max_loaned_samples(1)
            .unable_to_deliver_strategy(UnableToDeliverStrategy::Block)
            .create()?;
        Ok(IceTx {
            publisher,
            service,
            _node: node,
        })
    }

    /// The child's subscriber is its ready signal.
    fn await_guest(tx: &mut IceTx) -> Result<()> {
        while tx.service.dynamic_config().number_of_subscribers() == 0 {
            spin_loop();
        }
        tx.publisher.update_connections()?;
        Ok(())
    }

    fn guest(name: &str) -> Result<IceRx> {
        let node = node()?;
        let service = node
            .service_builder(&ServiceName::new(name)?)
            .publish_subscribe::<[u8]>()
            .open()?;
        let subscriber = service
            .subscriber_builder()
            .buffer_size(depth(SIZE))
            .create()?;
        Ok(IceRx {
            subscriber,
            _service: service,
            _node: node,
        })
    }

    fn announce(_rx: &mut IceRx) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tput::Marks;
    use std::time::Duration;

    #[test]
    fn iceoryx2_delivers_every_message_intact() {
        crate::within(Duration::from_secs(60), || {
            let name = format!("ringport-bench-test-iceoryx2-{}", std::process::id());
            let plan = Plan {
                warm: 2,
                count: 30,
                frame: 1 << 16,
                trials: 1,
            };
            let mut tx = Iceoryx2::<{ 1 << 16 }>::host(&name).unwrap();
            let guest = std::thread::spawn(move || {
                let mut rx = Iceoryx2::<{ 1 << 16 }>::guest(&name).unwrap();
                Iceoryx2::<{ 1 << 16 }>::consume(&mut rx, &plan).unwrap()
            });
            Iceoryx2::<{ 1 << 16 }>::await_guest(&mut tx).unwrap();
            Iceoryx2::<{ 1 << 16 }>::produce(&mut tx, &plan).unwrap();
            assert_eq!(Marks::run(&guest.join().unwrap()).unwrap().0, 30);
        });
    }
}
