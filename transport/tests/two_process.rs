//! Rings across two real processes: order and content of ten million
//! messages, and request/response.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use transport::{Region, RegionConfig, WaitStrategy};

const MESSAGES: u64 = 10_000_000;
const WAIT: WaitStrategy = WaitStrategy::BALANCED;
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

/// Message `i`: its sequence number, then 0..=24 bytes derived from it, so
/// that lengths vary and wrap-around lands everywhere.
fn message(i: u64, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&i.to_le_bytes());
    let extra = (i % 25) as usize;
    buf.extend((0..extra).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8)));
}

#[test]
fn ten_million_messages_in_order() {
    if common::role().as_deref() == Some("producer") {
        let path = PathBuf::from(std::env::var("AVA_TEST_REGION").unwrap());
        let region = Region::open(&path).unwrap();
        let mut ch = region.claim().unwrap();
        let mut buf = Vec::new();
        for i in 0..MESSAGES {
            message(i, &mut buf);
            ch.tx.send(&buf, &WAIT, TIMEOUT).unwrap();
        }
        // Wait for the consumer's acknowledgement before releasing the channel.
        let mut ack = Vec::new();
        ch.rx.recv(&mut ack, &WAIT, TIMEOUT).unwrap();
        assert_eq!(ack, b"done");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    let config = RegionConfig {
        channels: 1,
        cmd_ring_size: 1 << 16,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 0,
    };
    let region = Region::create(&path, &config).unwrap();
    let mut peer = common::spawn_peer(
        "ten_million_messages_in_order",
        "producer",
        &[("AVA_TEST_REGION", path.display().to_string())],
    );
    let mut worker = loop {
        if let Some(w) = region.attach(0).unwrap() {
            break w;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut got = Vec::new();
    let mut want = Vec::new();
    for i in 0..MESSAGES {
        worker.rx.recv(&mut got, &WAIT, TIMEOUT).unwrap();
        message(i, &mut want);
        assert_eq!(got, want, "message {i}");
    }
    assert!(
        !worker.rx.has_message().unwrap(),
        "no message beyond the last"
    );
    worker.tx.send(b"done", &WAIT, TIMEOUT).unwrap();
    assert!(peer.wait().unwrap().success());
}

#[test]
fn request_response_between_processes() {
    if common::role().as_deref() == Some("guest") {
        let path = PathBuf::from(std::env::var("AVA_TEST_REGION").unwrap());
        let region = Region::open(&path).unwrap();
        let mut ch = region.claim().unwrap();
        let mut reply = Vec::new();
        for i in 0u32..10_000 {
            ch.tx.send(&i.to_le_bytes(), &WAIT, TIMEOUT).unwrap();
            ch.rx.recv(&mut reply, &WAIT, TIMEOUT).unwrap();
            assert_eq!(reply, (i * 2).to_le_bytes());
        }
        ch.tx.send(b"bye", &WAIT, TIMEOUT).unwrap();
        // Stay until the worker has seen "bye": leaving releases the channel.
        ch.rx.recv(&mut reply, &WAIT, TIMEOUT).unwrap();
        assert_eq!(reply, b"ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    let region = Region::create(&path, &RegionConfig::default()).unwrap();
    let mut peer = common::spawn_peer(
        "request_response_between_processes",
        "guest",
        &[("AVA_TEST_REGION", path.display().to_string())],
    );
    let mut worker = loop {
        if let Some(w) = region.attach(0).unwrap() {
            break w;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut cmd = Vec::new();
    let mut served = 0u32;
    loop {
        worker.rx.recv(&mut cmd, &WAIT, TIMEOUT).unwrap();
        if cmd == b"bye" {
            worker.tx.send(b"ok", &WAIT, TIMEOUT).unwrap();
            break;
        }
        let v = u32::from_le_bytes(cmd[..4].try_into().unwrap());
        worker
            .tx
            .send(&(v * 2).to_le_bytes(), &WAIT, TIMEOUT)
            .unwrap();
        served += 1;
    }
    assert_eq!(served, 10_000);
    assert!(peer.wait().unwrap().success());
}
