//! iceoryx2 publish/subscribe, one way: the writer copies the whole payload into a loaned
//! sample and sends it; the reader polls `receive()` and validates every byte. Acknowledgements
//! go back over a second service of `u64` (not timed).

use std::process::{Command, Stdio};

use iceoryx2::prelude::*;

use crate::clock::now_ns;
use crate::stats::{phase, report};
use crate::{Opts, fill, pin_to, validate};

fn services(
    node: &Node<ipc::Service>,
    opts: &Opts,
) -> Result<
    (
        iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
        iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, u64, ()>,
    ),
    String,
> {
    let e = |what: &str, err: &dyn std::fmt::Debug| format!("iceoryx2 {what}: {err:?}");
    let data_name: ServiceName = format!("{}/data", opts.service)
        .as_str()
        .try_into()
        .map_err(|err| e("service name", &err))?;
    let ack_name: ServiceName = format!("{}/ack", opts.service)
        .as_str()
        .try_into()
        .map_err(|err| e("service name", &err))?;
    let data = node
        .service_builder(&data_name)
        .publish_subscribe::<[u8]>()
        .open_or_create()
        .map_err(|err| e("data service", &err))?;
    let ack = node
        .service_builder(&ack_name)
        .publish_subscribe::<u64>()
        .open_or_create()
        .map_err(|err| e("ack service", &err))?;
    Ok((data, ack))
}

/// The writer (publisher) process: spawns the reader, runs the steps, prints the report.
pub fn run(opts: &Opts) -> Result<(), String> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))?;
    let (data, ack) = services(&node, opts)?;
    let publisher = data
        .publisher_builder()
        .initial_max_slice_len(opts.payload)
        .create()
        .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?;
    let acks = ack
        .subscriber_builder()
        .create()
        .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?;
    if let Some((w, _)) = opts.cpus {
        pin_to(w)?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("iceoryx2-reader")
        .args(opts.to_args())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the reader: {e}"))?;
    let wait_ack = |step: u64| -> Result<(), String> {
        let started = std::time::Instant::now();
        loop {
            match acks.receive().map_err(|e| format!("ack: {e:?}"))? {
                Some(sample) if *sample.payload() >= step => return Ok(()),
                Some(_) => {}
                None => std::hint::spin_loop(),
            }
            if started.elapsed().as_secs() > 30 {
                return Err(format!("the reader never acknowledged step {step}"));
            }
        }
    };
    wait_ack(0)?;
    let mut bytes = vec![0u8; opts.payload];
    let steps = (opts.warmup() + opts.iterations) as u64;
    for step in 1..=steps {
        let t0 = now_ns();
        fill(&mut bytes, t0, step);
        let sample = publisher
            .loan_slice_uninit(opts.payload)
            .map_err(|e| format!("loan: {e:?}"))?;
        let sample = sample.write_from_slice(&bytes);
        sample.send().map_err(|e| format!("send: {e:?}"))?;
        wait_ack(step)?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("the reader failed: {}", out.status));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// The reader (subscriber) process.
pub fn reader(opts: &Opts) -> Result<(), String> {
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| format!("iceoryx2 node: {e:?}"))?;
    let (data, ack) = services(&node, opts)?;
    let subscriber = data
        .subscriber_builder()
        .create()
        .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?;
    let acks = ack
        .publisher_builder()
        .create()
        .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?;
    if let Some((_, r)) = opts.cpus {
        pin_to(r)?;
    }
    acks.send_copy(0).map_err(|e| format!("ack: {e:?}"))?;
    let warmup = opts.warmup() as u64;
    let steps = warmup + opts.iterations as u64;
    let (mut received, mut held) = (Vec::new(), Vec::new());
    for step in 1..=steps {
        let sample = loop {
            match subscriber
                .receive()
                .map_err(|e| format!("receive: {e:?}"))?
            {
                Some(sample) => break sample,
                None => std::hint::spin_loop(),
            }
        };
        let t1 = now_ns();
        let (t0, seen) = validate(sample.payload())
            .ok_or_else(|| format!("step {step}: the payload is not as written"))?;
        let t2 = now_ns();
        if seen != step {
            return Err(format!("expected step {step}, received {seen}"));
        }
        drop(sample);
        if step > warmup {
            received.push(t1.saturating_sub(t0));
            held.push(t2.saturating_sub(t0));
        }
        acks.send_copy(step).map_err(|e| format!("ack: {e:?}"))?;
    }
    report(
        "iceoryx2",
        opts.payload,
        vec![
            phase("receive", &mut received),
            phase("hold_validated", &mut held),
        ],
    );
    Ok(())
}
