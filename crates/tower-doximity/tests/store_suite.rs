//! The public store suite (`tower_doximity::store_suite::run`) against every store the crate
//! knows: `MemoryStore`, `RedisStore` over a real `redis-server`, and the `SessionStore`
//! documentation's worked example, written here from that example alone. A store that breaks a
//! rule (the last test) is caught.

#![allow(clippy::unwrap_used)] // Test code: a failure should panic.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tower_doximity::store_suite::run;
use tower_doximity::{
    MemoryStore, RedisStore, SessionId, SessionStore, StoreFuture, StoredSession,
};

#[tokio::test]
async fn memory_store_passes_the_suite() {
    run(&MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn redis_store_passes_the_suite() {
    let Some(server) = redis_server::RedisServer::shared().await else {
        return;
    };
    let store = RedisStore::connect(server.url())
        .await
        .unwrap()
        .with_prefix(format!("store-suite{}:", std::process::id()));
    run(&store).await.unwrap();
}

/// The worked example of `SessionStore`'s documentation.
#[derive(Default)]
struct MapStore {
    sessions: Mutex<HashMap<String, StoredSession>>,
    deleted: Mutex<HashSet<String>>,
}

impl SessionStore for MapStore {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move { Ok(self.sessions.lock().unwrap().get(id.as_str()).cloned()) })
    }
    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.deleted.lock().unwrap().contains(id.as_str()) {
                return Ok(());
            }
            let mut sessions = self.sessions.lock().unwrap();
            let newer = sessions
                .get(id.as_str())
                .is_some_and(|s| s.revision() > session.revision());
            if !newer {
                sessions.insert(id.as_str().to_owned(), session.clone());
            }
            Ok(())
        })
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.deleted.lock().unwrap().insert(id.as_str().to_owned());
            self.sessions.lock().unwrap().remove(id.as_str());
            Ok(())
        })
    }
}

#[tokio::test]
async fn the_documented_example_store_passes_the_suite() {
    run(&MapStore::default()).await.unwrap();
}

/// A store that ignores the revision (a late write-back wins): the suite names the rule.
#[derive(Default)]
struct LastWriteWins(Mutex<HashMap<String, StoredSession>>);

impl SessionStore for LastWriteWins {
    fn load<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(async move { Ok(self.0.lock().unwrap().get(id.as_str()).cloned()) })
    }
    fn store<'a>(&'a self, id: &'a SessionId, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .lock()
                .unwrap()
                .insert(id.as_str().to_owned(), session.clone());
            Ok(())
        })
    }
    fn delete<'a>(&'a self, id: &'a SessionId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0.lock().unwrap().remove(id.as_str());
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_store_that_ignores_the_revision_is_caught() {
    let failure = run(&LastWriteWins::default()).await.unwrap_err();
    assert!(failure.rule.contains("lower revision"), "{failure}");
}
