//! Threads of this test process by name (`/proc/self/task/*/comm`), to see that the threads a
//! reader starts end.

/// The threads of this process named `name`.
pub fn named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}
