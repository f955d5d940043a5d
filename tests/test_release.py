"""The student release holds what a learner needs and nothing of the solutions or hidden tests."""
import glob
import os

import nbformat
import pytest

from course_lib import release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "course-release"
    return release.build_release(str(out))


def test_release_has_the_course_and_an_archive(built):
    for name in ("lessons", "exercises", "course_lib", "binder", "pyproject.toml", "course.sh", "README.md"):
        assert os.path.exists(os.path.join(built, name)), name
    assert os.path.exists(os.path.join(built, "course_lib", "checks", "__init__.py"))  # public checks ship
    assert os.path.getsize(built + ".zip") > 10_000
    lessons = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "lessons", "*.ipynb"))}
    assert lessons == {os.path.basename(p) for p in glob.glob(os.path.join(built, "lessons", "*.ipynb"))}


def test_release_leaks_nothing(built):
    assert release.find_leaks(built) == []
    for forbidden in ("solutions", "tests", "benchmarks", ".ci"):
        assert not os.path.exists(os.path.join(built, forbidden))
    for path in glob.glob(os.path.join(built, "exercises", "*.ipynb")):
        text = open(path).read()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text


def test_leak_check_can_fail(built, tmp_path):
    """Negative control: plant a solution line and a hidden-test name; find_leaks must report both."""
    lines = sorted(release.solution_lines(ROOT))
    names, _ = release.hidden_secrets(ROOT)
    if not lines or not names:
        pytest.skip("no lesson exercises yet")
    target = os.path.join(built, "exercises", "planted.py")
    with open(target, "w") as f:
        f.write(lines[0] + "\n" + sorted(names)[0] + "\n")
    try:
        leaks = release.find_leaks(built)
        assert any("solution line" in leak for leak in leaks)
        assert any("hidden-test name" in leak for leak in leaks)
    finally:
        os.remove(target)


def test_release_exercises_match_generated_stubs(built):
    for src in glob.glob(os.path.join(ROOT, "exercises", "*.ipynb")):
        a = nbformat.read(src, as_version=4)
        b = nbformat.read(os.path.join(built, "exercises", os.path.basename(src)), as_version=4)
        assert [c.source for c in a.cells] == [c.source for c in b.cells]


def test_release_at_its_own_address_carries_links_there(tmp_path):
    """`release --address URL`: the release declares URL, and its README, lessons and exercises link there."""
    from course_lib import links

    out = release.build_release(str(tmp_path / "rel"), archive=False,
                                address="https://github.com/a-school/course-2027", branch="spring")
    assert links.declared(out) == {"repository": "https://github.com/a-school/course-2027", "branch": "spring"}
    assert links.write_links(out, check=True) == []  # nothing stale in the release
    readme = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    assert "https://mybinder.org/v2/gh/a-school/course-2027/spring?" in readme
    ex = nbformat.read(os.path.join(out, "exercises", "01_kernel_regime.ipynb"), as_version=4)
    assert ("colab.research.google.com/github/a-school/course-2027/blob/spring/exercises/01_kernel_regime.ipynb"
            in ex.cells[0].source)
    setup = next(c for c in ex.cells if c.cell_type == "code")
    assert "course-setup" in setup.metadata["tags"] and "git+https://github.com/a-school/course-2027@spring" in setup.source
    own = links.declared(ROOT)["repository"].split("github.com/")[1]
    assert own not in readme and not any(
        own in open(p, encoding="utf-8").read() for p in glob.glob(os.path.join(out, "*", "*.ipynb")))
    assert release.find_leaks(out) == []


def test_release_refuses_an_address_it_cannot_link(tmp_path):
    with pytest.raises(ValueError, match="GitHub address"):
        release.build_release(str(tmp_path / "rel"), archive=False, address="https://example.org/course")
    assert not os.path.exists(tmp_path / "rel")
