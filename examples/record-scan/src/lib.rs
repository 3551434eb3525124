//! # record-scan: a kernel that works through a host-owned table by calling the host
//!
//! The host owns a table of [`Record`]s. The kernel (`kernels/scan.cu`) does
//! not get it up front: it pulls it one page at a time (at most
//! [`PAGE_RECORDS`] records) from a host service ([`SERVICE_PAGE`]) with
//! `rb_call`, folds every record into per-bucket aggregates ([`BucketStats`]:
//! count, sum, max of the values of the records whose `key % buckets` is the
//! bucket) kept in a bridge-owned buffer, logs its progress with `rb_log`, and
//! answers queries over what it has scanned so far.
//!
//! Two ways to scan, mixable:
//!
//! - **in the background** ([`ScanConfig::background`]): the kernel's idle
//!   hook pulls one page each time the serve loop finds no request waiting,
//!   so requests are answered between its pages, and a query sees the
//!   aggregates of exactly the first [`Progress::records`] records;
//! - **on request** ([`Scanner::pull`]): each pull request claims the next
//!   page and folds it in, on the GPU (and in the block emulation) one per
//!   thread, many at once.
//!
//! The table's end is a service error: the page service refuses a page past
//! the end with [`ERR_PAST_END`], and the kernel takes that as "complete".
//! Any other failed call stops the scan; queries then report it
//! ([`ScanState::Failed`]).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use record_scan::{generate_records, Reference, ScanConfig, ScanState, Scanner};
//! use ringbridge::{Backend, Bridge};
//!
//! let records: Arc<[_]> = generate_records(10_000, 7).into();
//! let config = ScanConfig::default();
//! let reference = Reference::new(&records, config.buckets);
//! let scanner = Scanner::launch(Bridge::builder().backend(Backend::Fallback), records, config)?;
//! // The kernel scans in the background; wait until it has seen everything.
//! let done = scanner.wait_complete(Duration::from_secs(30))?;
//! assert_eq!((done.pages, done.records, done.state), (20, 10_000, ScanState::Complete));
//! let answer = scanner.query(3)?;
//! assert_eq!(answer.stats, reference.total(3));
//! // The buckets read back after shutdown: the same as the host computes.
//! assert_eq!(scanner.shutdown()?, reference.totals());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What a query sees
//!
//! The idle hook runs between batches, never beside a request, so a query
//! sees every page folded in completely: its answer is exact for the first
//! `records` records of the table ([`Reference::check`] checks that). Pull
//! requests fold pages while the other requests of their batch run: a query
//! in the same batch as pulls may see a page half folded. [`Scanner::pull`]
//! waits for its pulls' replies before it returns, so queries made after it
//! returns are exact again. One more case: when a page fails in a batch of
//! pulls, the batch's other pulls may have folded later pages, so what was
//! folded is then not the table's first records.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringbridge::buffer::BufferInit;
use ringbridge::calls::{CallRing, ServiceError};
use ringbridge::layout::CALL_FIRST_SERVICE_CODE;
use ringbridge::{Bridge, BridgeBuilder, Kernel, MessageEnvelope};

include!(concat!(env!("OUT_DIR"), "/scan_kernels.rs"));

/// Records in a full page (`RS_PAGE_RECORDS` in `kernels/scan.cu`): 4000
/// bytes, which fit a [`CALL_SLOT_SIZE`] call slot's 4064-byte payload.
pub const PAGE_RECORDS: usize = 500;

/// The page service's id: request one little-endian `u64` (the page),
/// answer the page's records (at most [`PAGE_RECORDS`]).
pub const SERVICE_PAGE: u32 = 1;

/// The page service's status for a page past the end of the table (the
/// first status a service may use, `CALL_FIRST_SERVICE_CODE`).
pub const ERR_PAST_END: u32 = CALL_FIRST_SERVICE_CODE;

/// Call slots of the bridge's call ring: calls beyond this many wait in the
/// kernel for a free slot.
pub const CALL_SLOTS: usize = 16;

/// Bytes of one call slot: a page of [`PAGE_RECORDS`] records and the
/// 32-byte call header fit.
pub const CALL_SLOT_SIZE: usize = 4096;

/// Request op: a bucket's aggregates and the progress.
pub const OP_QUERY: u32 = 1;
/// Request op: the progress alone.
pub const OP_PROGRESS: u32 = 2;
/// Request op: claim the next page, pull it and fold it in.
pub const OP_PULL: u32 = 3;

/// Error reply (the reply's flags): a request that is not 8 bytes, or an
/// unknown op.
pub const ERR_BAD_REQUEST: u32 = 1;
/// Error reply: a bucket not below [`ScanConfig::buckets`].
pub const ERR_BAD_BUCKET: u32 = 2;

/// Most pages a scan may count (the kernel keeps pages and records in one
/// 64-bit word: 24 bits of pages, 40 of records); the page service refuses
/// later pages, which stops the scan.
pub const MAX_PAGES: u64 = 1 << 24;

/// Pull requests [`Scanner::pull`] sends at once at most (the rings hold 256).
pub const PULL_ROUND: usize = 128;

/// One record of the host's table, as the page service sends it
/// (`rs_record` in `kernels/scan.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Record {
    /// Its bucket is `key % buckets`.
    pub key: u32,
    /// What the buckets count, add up and take the largest of.
    pub value: u32,
}

impl Record {
    /// The bucket it belongs to among `buckets` (at least 1).
    pub fn bucket(&self, buckets: u32) -> u32 {
        self.key % buckets
    }
}

/// One bucket's aggregates (`rs_bucket` in `kernels/scan.cu`; buffer 0 is
/// one per bucket).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BucketStats {
    /// Records in the bucket.
    pub count: u64,
    /// The sum of their values.
    pub sum: u64,
    /// The largest value (0 for an empty bucket).
    pub max: u64,
}

impl BucketStats {
    /// With one more record of `value`.
    pub fn add(&mut self, value: u32) {
        self.count += 1;
        self.sum += u64::from(value);
        self.max = self.max.max(u64::from(value));
    }
}

/// The kernel's typed parameter (`rs_param` in `kernels/scan.cu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ScanParam {
    /// Buckets (entries of buffer 0), at least 1.
    pub buckets: u32,
    /// A progress line every this many pages; 0: none.
    pub log_every: u32,
    /// Non-zero: the idle hook scans.
    pub background: u32,
    /// Zero.
    pub reserved: u32,
}

/// How a [`Scanner`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// Buckets, at least 1.
    pub buckets: u32,
    /// The kernel logs "scanned {pages} pages, {records} records" every
    /// this many pages (0: never); it always logs the end of the scan.
    pub log_every: u32,
    /// Whether the kernel scans by itself when no request waits. Without,
    /// only [`Scanner::pull`] scans.
    pub background: bool,
}

impl Default for ScanConfig {
    /// 64 buckets, a progress line every 50 pages, scanning in the background.
    fn default() -> Self {
        Self {
            buckets: 64,
            log_every: 50,
            background: true,
        }
    }
}

impl ScanConfig {
    /// The kernel's parameter.
    pub fn param(&self) -> ScanParam {
        ScanParam {
            buckets: self.buckets,
            log_every: self.log_every,
            background: u32::from(self.background),
            reserved: 0,
        }
    }
}

/// A small seeded generator (xorshift64*), so tables are reproducible.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded with `seed` (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` records drawn from `seed`: keys uniform over `u32`, values uniform
/// in `0..1_000_000`. The same arguments give the same table.
///
/// ```
/// let a = record_scan::generate_records(1000, 42);
/// assert_eq!(a.len(), 1000);
/// assert_eq!(a, record_scan::generate_records(1000, 42));
/// assert!(a.iter().all(|r| r.value < 1_000_000));
/// ```
pub fn generate_records(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|_| {
            let bits = rng.next_u64();
            Record {
                key: (bits >> 32) as u32,
                value: ((bits & 0xffff_ffff) % 1_000_000) as u32,
            }
        })
        .collect()
}

/// Page `index` of `records`: at most [`PAGE_RECORDS`] records, or
/// [`ERR_PAST_END`] when the table has no such page. What the page service
/// of [`Scanner::launch`] answers.
///
/// ```
/// use record_scan::{page, ERR_PAST_END, PAGE_RECORDS};
/// let records = record_scan::generate_records(1200, 1);
/// assert_eq!(page(&records, 0)?.len(), PAGE_RECORDS);
/// assert_eq!(page(&records, 2)?, &records[1000..]);
/// assert_eq!(page(&records, 3).unwrap_err().code(), ERR_PAST_END);
/// # Ok::<(), ringbridge::calls::ServiceError>(())
/// ```
pub fn page(records: &[Record], index: u64) -> Result<&[Record], ServiceError> {
    let pages = records.len().div_ceil(PAGE_RECORDS) as u64;
    if index >= pages {
        return Err(ServiceError::with_code(
            ERR_PAST_END,
            format!(
                "page {index} is past the end of the table ({pages} pages): the scan is complete"
            ),
        ));
    }
    let start = index as usize * PAGE_RECORDS;
    Ok(&records[start..records.len().min(start + PAGE_RECORDS)])
}

/// Where a scan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanState {
    /// Pages are still to come.
    Scanning,
    /// The page service said the table ended, and every page before the
    /// end is folded in.
    Complete,
    /// A page's call failed (not with [`ERR_PAST_END`]): the scan stopped.
    Failed {
        /// The page.
        page: u64,
        /// The call's status: the service's own code, or one of
        /// ringbridge's `CALL_*` (`ringbridge::layout`).
        status: u32,
    },
}

/// How far the scan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Pages folded in.
    pub pages: u64,
    /// Records folded in.
    pub records: u64,
    /// Whether it goes on.
    pub state: ScanState,
}

/// The answer to a query: one bucket's aggregates and the progress they
/// were taken at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketAnswer {
    /// The bucket asked for.
    pub bucket: u32,
    /// Its aggregates over the records scanned so far.
    pub stats: BucketStats,
    /// How far the scan was.
    pub progress: Progress,
}

/// What one pull request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullOutcome {
    /// It folded in `page`, of `records` records.
    Folded {
        /// The page.
        page: u64,
        /// Its records.
        records: u32,
    },
    /// The table had ended: at its page (`Some`, the page service said so),
    /// or before it claimed one (`None`).
    PastEnd {
        /// The page it claimed, if any.
        page: Option<u64>,
    },
    /// A call failed: its own (`Some(page)`), or an earlier one (`None`).
    Failed {
        /// The page it claimed, if any.
        page: Option<u64>,
        /// The failed call's status.
        status: u32,
    },
}

/// What went wrong.
#[derive(Debug)]
pub enum ScanError {
    /// The bridge failed (launch, a dead or hung kernel, shutdown).
    Bridge(ringbridge::Error),
    /// The kernel answered with an error reply ([`ERR_BAD_REQUEST`],
    /// [`ERR_BAD_BUCKET`]).
    Refused {
        /// The op asked for.
        op: u32,
        /// The reply's code.
        code: u32,
    },
    /// A reply of the wrong shape.
    BadReply(String),
    /// The scan stopped at a page whose call failed.
    PageFailed {
        /// The page.
        page: u64,
        /// The call's status.
        status: u32,
    },
    /// A wait ran out.
    Timeout {
        /// How long it waited.
        waited: Duration,
        /// The progress it last saw.
        progress: Progress,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bridge(e) => e.fmt(f),
            Self::Refused { op, code } => write!(f, "op {op} refused with error {code}"),
            Self::BadReply(what) => write!(f, "bad reply: {what}"),
            Self::PageFailed { page, status } => {
                write!(
                    f,
                    "the scan stopped: page {page} failed with status {status}"
                )
            }
            Self::Timeout { waited, progress } => write!(
                f,
                "still scanning after {waited:?}: {} pages, {} records",
                progress.pages, progress.records
            ),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the bridge's error is displayed as it is.
            Self::Bridge(e) => e.source(),
            _ => None,
        }
    }
}

impl From<ringbridge::Error> for ScanError {
    fn from(e: ringbridge::Error) -> Self {
        Self::Bridge(e)
    }
}

/// The 8-byte request `{op, arg}` (`rs_request`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Request {
    op: u32,
    arg: u32,
}

/// The reply to [`OP_QUERY`] and [`OP_PROGRESS`] (`rs_view`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct View {
    stats: BucketStats,
    pages: u64,
    records: u64,
    end: u64,
    failure: u64,
    reserved: u64,
}

/// The reply to [`OP_PULL`] (`rs_pull`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Pull {
    page: u64,
    records: u32,
    status: u32,
}

/// `rs_pull.page` when no page was claimed.
const NO_PAGE: u64 = u64::MAX;

// The sizes `kernels/scan.cu` has for the same structs.
const _: () = {
    assert!(size_of::<Record>() == 8 && size_of::<BucketStats>() == 24);
    assert!(size_of::<ScanParam>() == 16 && size_of::<Request>() == 8);
    assert!(size_of::<View>() == 64 && size_of::<Pull>() == 16);
    assert!(PAGE_RECORDS * size_of::<Record>() + 32 <= CALL_SLOT_SIZE);
};

/// The reply's payload as a `T`, or what was wrong with it.
fn reply_as<T: bytemuck::Pod>(op: u32, m: &MessageEnvelope) -> Result<T, ScanError> {
    if m.is_error() {
        return Err(ScanError::Refused {
            op,
            code: m.header.flags,
        });
    }
    if !m.is_reply() || m.payload.len() != size_of::<T>() {
        return Err(ScanError::BadReply(format!(
            "op {op}: {:?} with {} bytes, expected {}",
            m.header,
            m.payload.len(),
            size_of::<T>()
        )));
    }
    Ok(bytemuck::pod_read_unaligned(&m.payload))
}

impl View {
    fn progress(&self) -> Progress {
        let state = if self.failure != 0 {
            ScanState::Failed {
                page: self.failure >> 32,
                status: self.failure as u32,
            }
        } else if self.end != 0 && self.pages + 1 >= self.end {
            ScanState::Complete
        } else {
            ScanState::Scanning
        };
        Progress {
            pages: self.pages,
            records: self.records,
            state,
        }
    }
}

/// The kernel serving a table, with its bridge.
///
/// `Scanner` is `Sync`: queries may come from many threads at once (they
/// pipeline). [`pull`](Self::pull)s take turns with each other.
#[derive(Debug)]
pub struct Scanner {
    bridge: Bridge,
    config: ScanConfig,
    /// Held by a pull: its replies are received in order by plain receives.
    pulling: Mutex<()>,
}

impl Scanner {
    /// Launches the kernel over `records`, served page by page by
    /// [`page`]. `builder` picks the backend and anything else of the
    /// bridge's that the scanner leaves alone (block emulation, timeouts,
    /// wait policy, block size); the scanner sets the kernel, the rings
    /// (256 slots of 128 bytes each way), the buffers, the call ring
    /// ([`CALL_SLOTS`] slots of [`CALL_SLOT_SIZE`] bytes) and the page
    /// service.
    pub fn launch(
        builder: BridgeBuilder,
        records: Arc<[Record]>,
        config: ScanConfig,
    ) -> Result<Self, ScanError> {
        let service = move |request: &[u8]| -> Result<Vec<u8>, ServiceError> {
            let page = page(&records, page_index(request)?)?;
            Ok(bytemuck::cast_slice(page).to_vec())
        };
        Self::launch_with_service(builder, config, service)
    }

    /// Launches the kernel over pages from `pages`: page index to its
    /// records (at most [`PAGE_RECORDS`]; a page of none is allowed), or
    /// [`ERR_PAST_END`] for the first page past the end (and every later
    /// one), or another [`ServiceError`], which stops the scan. It runs on
    /// the bridge's service thread, one page at a time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use record_scan::{Record, ScanConfig, ScanError, Scanner, ERR_PAST_END};
    /// use ringbridge::calls::ServiceError;
    /// use ringbridge::{Backend, Bridge};
    /// // Three pages of one record each, and a storage error at page 1.
    /// let pages = |page: u64| match page {
    ///     0 | 2 => Ok(vec![Record { key: 1, value: 10 }]),
    ///     1 => Err(ServiceError::with_code(40, "storage unavailable")),
    ///     _ => Err(ServiceError::with_code(ERR_PAST_END, "past the end")),
    /// };
    /// let builder = Bridge::builder().backend(Backend::Fallback);
    /// let scanner = Scanner::launch_with_pages(builder, ScanConfig::default(), pages)?;
    /// let stopped = scanner.wait_complete(Duration::from_secs(30));
    /// assert!(matches!(stopped, Err(ScanError::PageFailed { page: 1, status: 40 })));
    /// // What it had scanned before is still there.
    /// assert_eq!(scanner.query(1)?.stats.sum, 10);
    /// scanner.shutdown()?;
    /// # Ok::<(), ScanError>(())
    /// ```
    pub fn launch_with_pages<F>(
        builder: BridgeBuilder,
        config: ScanConfig,
        pages: F,
    ) -> Result<Self, ScanError>
    where
        F: Fn(u64) -> Result<Vec<Record>, ServiceError> + Send + Sync + 'static,
    {
        let service = move |request: &[u8]| -> Result<Vec<u8>, ServiceError> {
            let index = page_index(request)?;
            let records = pages(index)?;
            if records.len() > PAGE_RECORDS {
                return Err(ServiceError::new(format!(
                    "page {index}: {} records, more than a page's {PAGE_RECORDS}",
                    records.len()
                )));
            }
            Ok(bytemuck::cast_slice(&records).to_vec())
        };
        Self::launch_with_service(builder, config, service)
    }

    fn launch_with_service<F>(
        builder: BridgeBuilder,
        config: ScanConfig,
        service: F,
    ) -> Result<Self, ScanError>
    where
        F: Fn(&[u8]) -> Result<Vec<u8>, ServiceError> + Send + Sync + 'static,
    {
        if config.buckets == 0 {
            return Err(ScanError::Bridge(ringbridge::Error::InvalidArgument(
                "a scan needs at least one bucket".into(),
            )));
        }
        let bridge = builder
            .kernel(Kernel::User(record_scan().with_param(config.param())))
            .slot_size(128)
            .capacity(256)
            .buffer(BufferInit::zeroed(
                config.buckets as usize * size_of::<BucketStats>(),
            ))
            .buffer(BufferInit::zeroed(32))
            .call_ring(CallRing::new(CALL_SLOTS, CALL_SLOT_SIZE)?)
            .service(SERVICE_PAGE, service)
            .launch()?;
        Ok(Self {
            bridge,
            config,
            pulling: Mutex::new(()),
        })
    }

    /// The bridge: its backend, [`stats`](Bridge::stats) (`calls`: the
    /// page calls served and failed, the log lines), and so on.
    pub fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// The configuration it was launched with.
    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    fn ask(&self, op: u32, arg: u32) -> Result<View, ScanError> {
        let m = self
            .bridge
            .round_trip(bytemuck::bytes_of(&Request { op, arg }))?;
        reply_as(op, &m)
    }

    /// Bucket `bucket`'s aggregates over the records scanned so far, with
    /// the progress they were taken at. [`ScanError::Refused`] with
    /// [`ERR_BAD_BUCKET`] for a bucket not below [`ScanConfig::buckets`].
    pub fn query(&self, bucket: u32) -> Result<BucketAnswer, ScanError> {
        let view = self.ask(OP_QUERY, bucket)?;
        Ok(BucketAnswer {
            bucket,
            stats: view.stats,
            progress: view.progress(),
        })
    }

    /// How far the scan is.
    pub fn progress(&self) -> Result<Progress, ScanError> {
        Ok(self.ask(OP_PROGRESS, 0)?.progress())
    }

    /// Sends `pages` pull requests, in rounds of at most [`PULL_ROUND`]
    /// sent at once (on the GPU the requests of a round run on many threads
    /// at once, each pulling a page), and returns what each did, in order.
    /// Pulls past the end are answered [`PullOutcome::PastEnd`], not an
    /// error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use record_scan::{generate_records, PullOutcome, ScanConfig, ScanState, Scanner};
    /// use ringbridge::{Backend, Bridge};
    /// let records: Arc<[_]> = generate_records(1_200, 3).into(); // pages of 500, 500, 200
    /// let config = ScanConfig { background: false, ..ScanConfig::default() };
    /// let scanner = Scanner::launch(Bridge::builder().backend(Backend::Fallback), records, config)?;
    /// let pulled = scanner.pull(4)?;
    /// assert_eq!(pulled[2], PullOutcome::Folded { page: 2, records: 200 });
    /// assert_eq!(pulled[3], PullOutcome::PastEnd { page: Some(3) });
    /// assert_eq!(scanner.progress()?.state, ScanState::Complete);
    /// # Ok::<(), record_scan::ScanError>(())
    /// ```
    pub fn pull(&self, pages: usize) -> Result<Vec<PullOutcome>, ScanError> {
        let _turn = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        let request = Request {
            op: OP_PULL,
            arg: 0,
        };
        let mut out = Vec::with_capacity(pages);
        while out.len() < pages {
            let n = (pages - out.len()).min(PULL_ROUND);
            let round = vec![bytemuck::bytes_of(&request); n];
            let first = self.bridge.send_batch(&round)?;
            for i in 0..n as u64 {
                let m = self.bridge.recv()?;
                if m.header.correlation != first + i {
                    return Err(ScanError::BadReply(format!(
                        "a pull's reply answers {}, not {}",
                        m.header.correlation,
                        first + i
                    )));
                }
                let p: Pull = reply_as(OP_PULL, &m)?;
                let page = (p.page != NO_PAGE).then_some(p.page);
                out.push(match (p.status, page) {
                    (0, Some(page)) => PullOutcome::Folded {
                        page,
                        records: p.records,
                    },
                    (ERR_PAST_END, page) => PullOutcome::PastEnd { page },
                    (0, None) => {
                        return Err(ScanError::BadReply("a pull folded no page".into()));
                    }
                    (status, page) => PullOutcome::Failed { page, status },
                });
            }
        }
        Ok(out)
    }

    /// Waits until at least `records` records are scanned or the scan is
    /// complete (then it may be fewer: the table had no more), asking for
    /// the progress about every millisecond. Only a background scan
    /// advances by itself. [`ScanError::PageFailed`] once the scan has
    /// stopped, [`ScanError::Timeout`] after `timeout`.
    pub fn wait_scanned(&self, records: u64, timeout: Duration) -> Result<Progress, ScanError> {
        let start = Instant::now();
        loop {
            let progress = self.progress()?;
            match progress.state {
                ScanState::Failed { page, status } => {
                    return Err(ScanError::PageFailed { page, status });
                }
                ScanState::Complete => return Ok(progress),
                ScanState::Scanning if progress.records >= records => return Ok(progress),
                ScanState::Scanning => {}
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(ScanError::Timeout { waited, progress });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the scan is complete: [`wait_scanned`](Self::wait_scanned)
    /// for every record.
    pub fn wait_complete(&self, timeout: Duration) -> Result<Progress, ScanError> {
        self.wait_scanned(u64::MAX, timeout)
    }

    /// Stops the kernel and reads the buckets back (buffer 0).
    pub fn shutdown(&self) -> Result<Vec<BucketStats>, ScanError> {
        self.bridge.shutdown()?;
        Ok(self.bridge.download_pod::<BucketStats>(0)?)
    }
}

/// The page index of a page request; a page the kernel could not count
/// ([`MAX_PAGES`] and on) fails the scan rather than overflow its count.
fn page_index(request: &[u8]) -> Result<u64, ServiceError> {
    let bytes: [u8; 8] = request.try_into().map_err(|_| {
        ServiceError::new(format!("a page request of {} bytes, not 8", request.len()))
    })?;
    let index = u64::from_le_bytes(bytes);
    if index >= MAX_PAGES {
        return Err(ServiceError::new(format!(
            "page {index}: a scan counts at most {MAX_PAGES} pages"
        )));
    }
    Ok(index)
}

/// The aggregates the kernel must report, computed on the host from the
/// same records: per bucket, after any number of records scanned.
#[derive(Clone, Debug)]
pub struct Reference {
    buckets: u32,
    records: u64,
    /// Per bucket: (index of a record in it + 1, the bucket's aggregates
    /// over the records up to it), in table order.
    steps: Vec<Vec<(u64, BucketStats)>>,
}

impl Reference {
    /// The reference of `records` in `buckets` buckets (at least 1).
    ///
    /// ```
    /// use record_scan::{BucketStats, Record, Reference};
    /// let records = [Record { key: 4, value: 7 }, Record { key: 1, value: 2 }, Record { key: 2, value: 9 }];
    /// let r = Reference::new(&records, 2); // keys 4 and 2 in bucket 0, 1 in bucket 1
    /// assert_eq!(r.total(0), BucketStats { count: 2, sum: 16, max: 9 });
    /// assert_eq!(r.prefix(0, 2), BucketStats { count: 1, sum: 7, max: 7 });
    /// assert_eq!(r.prefix(1, 1), BucketStats::default());
    /// ```
    pub fn new(records: &[Record], buckets: u32) -> Self {
        assert!(buckets > 0, "at least one bucket");
        let mut steps = vec![Vec::new(); buckets as usize];
        let mut now = vec![BucketStats::default(); buckets as usize];
        for (i, r) in records.iter().enumerate() {
            let b = r.bucket(buckets) as usize;
            now[b].add(r.value);
            steps[b].push((i as u64 + 1, now[b]));
        }
        Self {
            buckets,
            records: records.len() as u64,
            steps,
        }
    }

    /// Buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// Records in the table.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Pages in the table.
    pub fn pages(&self) -> u64 {
        self.records.div_ceil(PAGE_RECORDS as u64)
    }

    /// Bucket `bucket`'s aggregates over the first `records` records.
    pub fn prefix(&self, bucket: u32, records: u64) -> BucketStats {
        let steps = &self.steps[bucket as usize];
        match steps.partition_point(|(upto, _)| *upto <= records) {
            0 => BucketStats::default(),
            k => steps[k - 1].1,
        }
    }

    /// Bucket `bucket`'s aggregates over the whole table.
    pub fn total(&self, bucket: u32) -> BucketStats {
        self.prefix(bucket, self.records)
    }

    /// Every bucket's aggregates over the whole table.
    pub fn totals(&self) -> Vec<BucketStats> {
        (0..self.buckets).map(|b| self.total(b)).collect()
    }

    /// Whether `answer` is right for a table served by [`page`]: its
    /// records are those of its pages (every page full but the table's
    /// last), a complete scan has every page, and the aggregates are the
    /// bucket's over exactly those records.
    pub fn check(&self, answer: &BucketAnswer) -> Result<(), String> {
        let p = answer.progress;
        let want_records = (p.pages * PAGE_RECORDS as u64).min(self.records);
        if p.pages > self.pages() || p.records != want_records {
            return Err(format!(
                "bucket {}: {} pages and {} records scanned: a table of {} records has {} pages, and {} records in {} pages",
                answer.bucket,
                p.pages,
                p.records,
                self.records,
                self.pages(),
                want_records,
                p.pages
            ));
        }
        if p.state == ScanState::Complete && p.pages != self.pages() {
            return Err(format!(
                "complete after {} pages of {}",
                p.pages,
                self.pages()
            ));
        }
        let want = self.prefix(answer.bucket, p.records);
        if answer.stats != want {
            return Err(format!(
                "bucket {} after {} records: {:?}, expected {:?}",
                answer.bucket, p.records, answer.stats, want
            ));
        }
        Ok(())
    }
}
