use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use tessera_domain::ports::PasswordHasher;
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
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let argon = argon.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&argon, &queue))
                .map_err(|e| format!("cannot start a password hashing thread: {e}"))?;
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
    ) -> Result<T, String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "password hashing pool closed".to_owned())?;
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |argon| {
            // The caller may have gone away; then nobody needs the result.
            let _ = reply.send(work(argon));
        });
        self.jobs
            .send(job)
            .map_err(|_| "password hashing pool closed".to_owned())?;
        result
            .await
            .map_err(|_| "password hashing task failed".to_owned())
    }
}

/// Runs jobs until the hasher is dropped (its sender closes the queue). The thread lowers its own
/// priority first; where that is not allowed it hashes at normal priority.
fn hashing_thread(argon: &Argon2<'static>, queue: &Mutex<mpsc::Receiver<Job>>) {
    lower_own_priority();
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
    async fn hash(&self, password: &str) -> Result<String, String> {
        let password = password.to_owned();
        self.blocking(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| format!("argon2 hash failed: {e}"))
        })
        .await?
    }

    async fn verify<'a>(&self, password: &str, hash: Option<&'a str>) -> Result<bool, String> {
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

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        })
        .unwrap()
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
