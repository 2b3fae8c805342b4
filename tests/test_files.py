"""Atomic writes: a temporary name of each writer's own, so concurrent writers never collide."""

from concurrent.futures import ThreadPoolExecutor

from equinlp.files import write_atomic, write_folder_atomic, write_text_atomic


def test_concurrent_writers_of_one_file_do_not_collide(tmp_path):
    """Two processes under torchrun (here: threads) writing one result file: the last rename wins, whole."""
    path = tmp_path / "runs" / "result.json"
    texts = [f"writer {i}\n" * 1000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda text: [write_text_atomic(path, text) for _ in range(50)], texts))
    assert path.read_text() in texts
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "old")

    def broken(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    try:
        write_atomic(path, broken)
    except KeyboardInterrupt:
        pass
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "base"

    def write(folder, text):
        folder.mkdir()
        (folder / "weights").write_text(text)

    write_folder_atomic(target, lambda folder: write(folder, "one"))
    write_folder_atomic(target, lambda folder: write(folder, "two"))
    assert (target / "weights").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["base"]
