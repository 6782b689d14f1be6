use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use tessera_domain::ports::PasswordHasher;
use tessera_domain::Cause;
use tokio::sync::{oneshot, Semaphore};

/// Argon2id cost parameters. The defaults are OWASP's minimum (19 MiB, 2 passes, 1 lane);
/// tests use tiny ones through configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// How many hashes may run at once; the rest wait. Keeps a login storm from taking every
    /// core from the rest of the API.
    pub max_concurrent: usize,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 2,
        }
    }
}

/// A unit of hashing work for one of the hashing threads.
type Job = Box<dyn FnOnce(&Argon2<'static>) + Send>;

/// argon2id hashing and verification on `max_concurrent` dedicated threads running at the lowest
/// CPU priority (`SCHED_IDLE` on Linux, else nice 19), behind a semaphore.
///
/// Dedicated threads rather than tokio's blocking pool because of priority: a login storm keeps
/// every hashing thread busy, and at normal priority that takes the cores from the rest of the
/// API (`make bench` measured `GET /users/me`'s p99 rising 8× at half of its peak load). At the
/// lowest priority hashing gets what the API leaves idle and, under overload, logins queue
/// instead of everything else. A fixed set of threads also bounds how many 19 MiB hashing
/// buffers the allocator may keep around.
pub struct Argon2Hasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// A real hash of a random secret: verified against when there is no hash, so unknown users
    /// cost exactly what known ones do.
    dummy_hash: String,
}

impl Argon2Hasher {
    pub fn new(settings: Argon2Settings) -> Result<Self, String> {
        Self::with_thread_cgroup(settings, None)
    }

    /// Like [`new`](Self::new), with every hashing thread moved into the cgroup directory
    /// `thread_cgroup` (Linux; the caller creates it and makes it writable). `SCHED_IDLE` only
    /// yields to threads of the same scheduling group first; a cgroup with `cpu.idle = 1` (or a
    /// tiny `cpu.shares`/`cpu.weight`) makes the hashing yield to every other group too, such as
    /// a PostgreSQL on the same host. Fails if a thread cannot join it.
    pub fn with_thread_cgroup(
        settings: Argon2Settings,
        thread_cgroup: Option<PathBuf>,
    ) -> Result<Self, String> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map_err(|e| format!("argon2 self-test failed: {e}"))?
            .to_string();
        let threads = settings.max_concurrent.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (ready, started) = mpsc::channel::<Result<(), String>>();
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let argon = argon.clone();
            let cgroup = thread_cgroup.clone();
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_own_priority();
                    let joined = cgroup.as_deref().map_or(Ok(()), join_cgroup);
                    let failed = joined.is_err();
                    let _ = ready.send(joined);
                    if !failed {
                        hashing_thread(&argon, &queue);
                    }
                })
                .map_err(|e| format!("cannot start a password hashing thread: {e}"))?;
        }
        drop(ready);
        // Every thread reports once it is placed; a failure stops start-up (the threads already
        // running end when `jobs` is dropped with this error).
        for _ in 0..threads {
            started
                .recv()
                .map_err(|_| "a password hashing thread died while starting".to_owned())??;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            jobs,
            dummy_hash,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, Cause> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Cause::msg("password hashing pool closed"))?;
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |argon| {
            // The caller may have gone away; then nobody needs the result.
            let _ = reply.send(work(argon));
        });
        self.jobs
            .send(job)
            .map_err(|_| Cause::msg("password hashing pool closed"))?;
        result
            .await
            .map_err(|_| Cause::msg("password hashing task failed"))
    }
}

/// Moves the calling thread into the cgroup directory `dir`: through `cgroup.threads` on cgroup
/// v2 (the cgroup must be of type `threaded`), through `tasks` on v1. Writing `0` names the
/// writing thread itself, so no thread id is needed.
fn join_cgroup(dir: &Path) -> Result<(), String> {
    let v2 = dir.join("cgroup.threads");
    let file = if v2.exists() { v2 } else { dir.join("tasks") };
    std::fs::write(&file, "0").map_err(|e| {
        format!(
            "cannot move a password hashing thread into the cgroup {} ({}): {e}",
            dir.display(),
            file.display()
        )
    })
}

/// Runs jobs until the hasher is dropped (its sender closes the queue). The thread has lowered
/// its own priority first (where that is not allowed it hashes at normal priority).
fn hashing_thread(argon: &Argon2<'static>, queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(argon),
            Err(_) => return,
        }
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &str) -> Result<String, Cause> {
        let password = password.to_owned();
        self.blocking(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Cause::msg(format!("argon2 hash failed: {e}")))
        })
        .await?
    }

    async fn verify<'a>(&self, password: &str, hash: Option<&'a str>) -> Result<bool, Cause> {
        let password = password.to_owned();
        let (stored, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        self.blocking(move |argon| {
            let parsed = match PasswordHash::new(&stored) {
                Ok(parsed) => parsed,
                // A corrupt stored hash must not become a timing oracle either.
                Err(_) => return false,
            };
            // The stored hash carries its own parameters, so old hashes keep verifying after a
            // cost change.
            let ok = argon.verify_password(password.as_bytes(), &parsed).is_ok();
            ok && real
        })
        .await
    }
}

/// On Linux, `SCHED_IDLE`: nice 19 only ranks a thread within its own scheduling group (the
/// process's autogroup or cgroup), so a database on the same host still waited behind hashing;
/// any thread that is not `SCHED_IDLE`, in any group, preempts a `SCHED_IDLE` one as soon as it
/// wakes. Elsewhere, or where the policy cannot be set, the lowest nice value.
fn lower_own_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority};
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
            return;
        }
    }
    let _ = set_current_thread_priority(ThreadPriority::Min);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cheap_settings() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        }
    }

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::new(cheap_settings()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert!(hasher.verify("correct horse", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&hash)).await.unwrap());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_idle_priority() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let hasher = cheap();
        let policy = hasher
            .blocking(|_| thread_schedule_policy())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }

    #[tokio::test]
    async fn missing_or_corrupt_hashes_never_verify() {
        let hasher = cheap();
        assert!(!hasher.verify("anything", None).await.unwrap());
        assert!(!hasher.verify("anything", Some("not a hash")).await.unwrap());
        // Not even the dummy's own secret opens the dummy.
        let salt_guess = hasher.dummy_hash.clone();
        assert!(!hasher.verify(&salt_guess, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_thread_cgroup_that_cannot_be_joined_stops_start_up() {
        let dir = std::env::temp_dir().join(format!("tessera-no-cgroup-{}", uuid::Uuid::new_v4()));
        let error = Argon2Hasher::with_thread_cgroup(cheap_settings(), Some(dir.clone()))
            .err()
            .unwrap();
        assert!(error.contains(&dir.display().to_string()), "{error}");
    }

    /// Each hashing thread writes `0` (itself) to the cgroup's thread list: `cgroup.threads`
    /// where it exists (v2), else `tasks` (v1). Plain files stand in for the kernel's here.
    #[tokio::test]
    async fn hashing_threads_write_themselves_into_the_cgroup_thread_list() {
        let base = std::env::temp_dir().join(format!("tessera-cgroup-{}", uuid::Uuid::new_v4()));
        let (v1, v2) = (base.join("v1"), base.join("v2"));
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v1.join("tasks"), "").unwrap();
        std::fs::write(v2.join("cgroup.threads"), "").unwrap();
        for (dir, file) in [(&v1, "tasks"), (&v2, "cgroup.threads")] {
            let hasher = Argon2Hasher::with_thread_cgroup(cheap_settings(), Some(dir.clone()));
            assert!(hasher.is_ok());
            assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), "0");
        }
        assert!(!v2.join("tasks").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// With a real cgroup v1 `cpu` hierarchy that this process may write (root on a v1 host, as
    /// this project's CI machine is), the kernel really moves the threads. Elsewhere the case
    /// has nothing to check and says so.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_in_a_real_thread_cgroup() {
        let name = format!("tessera-test-{}", uuid::Uuid::new_v4().simple());
        let dir = Path::new("/sys/fs/cgroup/cpu").join(&name);
        if std::fs::create_dir(&dir).is_err() {
            eprintln!("no writable cgroup v1 cpu hierarchy here: skipped");
            return;
        }
        let hasher = Argon2Hasher::with_thread_cgroup(cheap_settings(), Some(dir.clone())).unwrap();
        let placed = hasher
            .blocking(|_| std::fs::read_to_string("/proc/thread-self/cgroup"))
            .await
            .unwrap()
            .unwrap();
        assert!(placed.contains(&format!(":cpu:/{name}\n")), "{placed}");
        // The caller's own thread stays where it was.
        let own = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
        assert!(!own.contains(&name), "{own}");
        drop(hasher);
        // The threads end once the hasher is gone; then the cgroup can go.
        for _ in 0..100 {
            if std::fs::remove_dir(&dir).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the hashing threads did not leave {}", dir.display());
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        let old = cheap().hash("pw-123456").await.unwrap();
        let stronger = Argon2Hasher::new(Argon2Settings {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 1,
        })
        .unwrap();
        assert!(stronger.verify("pw-123456", Some(&old)).await.unwrap());
    }
}
