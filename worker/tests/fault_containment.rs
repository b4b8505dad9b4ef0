//! A call that crashes the host driver takes down only its isolation
//! group's executor, with a real driver: PoCL aborts the process on a
//! request for a device-side queue (`samples/opencl/device_queue.c`).
//! Natively that kills the program; remoted, the guard refuses it with the
//! error the OpenCL specification requires, and with the guard turned off
//! the executor dies, the program gets an error instead of a hang, and the
//! worker serves the next program.

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn a_device_side_queue_is_refused_as_the_specification_says() {
    let exe = common::build_sample("device_queue");
    let native = common::run_capture(Command::new(&exe), Duration::from_secs(60));
    let native_out = common::text(&native.stdout);
    assert!(
        native_out.contains("queue on device properties: 0"),
        "{native_out}"
    );
    // PoCL ends the program without creating the queue.
    assert!(!native.status.success() || native_out.contains("created: no"));

    let mut stack = common::Stack::start("devqueue");
    let remote = common::run_capture(stack.remote(&exe), Duration::from_secs(60));
    assert!(
        remote.status.success(),
        "{}",
        common::remote_failure(&mut stack, "device_queue", &remote)
    );
    let out = common::text(&remote.stdout);
    // CL_INVALID_QUEUE_PROPERTIES.
    assert!(
        out.contains("device-side queue created: no, error -35"),
        "{out}"
    );
    assert!(stack.alive());
    assert!(!stack.log().contains("executor died"), "{}", stack.log());
}

#[test]
fn a_driver_abort_takes_down_only_its_executor() {
    let exe = common::build_sample("device_queue");
    let mut stack = common::Stack::launch(
        "driverabort",
        &["--arena-size", "8388608"],
        &[("AVA_UNGUARDED", "queue_on_device")],
    );
    let remote = common::run_capture(stack.remote(&exe), Duration::from_secs(120));
    let out = common::text(&remote.stdout);
    // The call failed with the transport error (CL_OUT_OF_RESOURCES), at
    // once rather than after a timeout, and the program went on.
    assert!(
        out.contains("device-side queue created: no, error -5"),
        "{}",
        common::remote_failure(&mut stack, "device_queue", &remote)
    );
    let died = stack.wait_for_log_line(&["executor died"]);
    assert!(!died.is_empty());
    let executing = stack.wait_for_log_line(&["the executor died executing"]);
    assert!(
        executing.contains("clCreateCommandQueueWithProperties")
            && executing.contains("api=opencl"),
        "{executing}"
    );
    // The worker serves the next program, on the restarted executor.
    common::assert_clinfo_list_same(&mut stack);
    assert!(stack.alive(), "the supervisor survived");
    let log = stack.log();
    assert_eq!(log.matches("executor started").count(), 2, "{log}");
    assert_eq!(log.matches("executor died group=").count(), 1, "{log}");
}
