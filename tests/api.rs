//! Handle properties: `Send + 'static`, outliving the `Ring`, moving into
//! threads, and the copying and batch helpers.

use std::time::Duration;

use mmring::{Config, RecvError, spsc};

fn assert_send_static<T: Send + 'static>() {}

#[test]
fn handles_are_send_and_static() {
    assert_send_static::<spsc::Producer>();
    assert_send_static::<spsc::Consumer>();
    assert_send_static::<spsc::Ring>();
    fn sync<T: Sync>() {}
    sync::<spsc::Ring>();
}

#[test]
fn handles_outlive_the_ring_value() {
    let (mut tx, mut rx) = {
        let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
        (ring.producer().unwrap(), ring.consumer().unwrap())
    };
    let t = std::thread::spawn(move || {
        for i in 0..10_000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
    });
    let mut buf = Vec::new();
    for i in 0..10_000u32 {
        rx.recv_into(&mut buf).unwrap();
        assert_eq!(buf, i.to_le_bytes());
    }
    t.join().unwrap();
    // The producer is gone and the ring is empty.
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvError::Disconnected
    );
}

#[test]
fn blocked_consumer_wakes_when_producer_detaches() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    std::thread::sleep(Duration::from_millis(50));
    drop(tx);
    assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
}

#[test]
fn blocked_producer_wakes_when_consumer_detaches() {
    let ring = spsc::Ring::anonymous(Config::new(64)).unwrap();
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    while tx.try_send(&[0; 24]).is_ok() {}
    let t = std::thread::spawn(move || tx.send(&[0; 24]));
    std::thread::sleep(Duration::from_millis(50));
    drop(rx);
    assert_eq!(t.join().unwrap(), Err(mmring::SendError::Disconnected));
}

#[test]
fn consumer_waits_for_a_first_producer() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let mut rx = ring.consumer().unwrap();
    // No producer has ever attached: that is not a disconnect.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvError::Timeout
    );
    let r2 = ring.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        r2.producer().unwrap().send(b"first").unwrap();
    });
    assert_eq!(&*rx.recv().unwrap(), b"first");
    t.join().unwrap();
}

#[test]
fn send_timeout_on_a_full_ring() {
    let ring = spsc::Ring::anonymous(Config::new(64)).unwrap();
    let mut tx = ring.producer().unwrap();
    let _rx = ring.consumer().unwrap();
    while tx.try_send(&[1; 24]).is_ok() {}
    assert_eq!(tx.try_send(&[1; 24]).unwrap_err(), mmring::SendError::Full);
    assert_eq!(
        tx.send_timeout(&[1; 24], Duration::from_millis(20))
            .unwrap_err(),
        mmring::SendError::Timeout
    );
}

#[test]
fn batch_releases_once_and_blocks_for_the_first() {
    let ring = spsc::Ring::anonymous(Config::new(1 << 12)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        for i in 0..100u8 {
            tx.send(&[i; 3]).unwrap();
        }
        tx
    });
    let mut seen = Vec::new();
    while seen.len() < 100 {
        rx.recv_batch(16, |f| seen.push(f[0])).unwrap();
    }
    assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    let _tx = t.join().unwrap();
    let st = ring.stat();
    assert_eq!(st.head, st.tail);
}
