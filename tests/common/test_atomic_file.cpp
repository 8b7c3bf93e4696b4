// AtomicFile: a reader, or a process killed at any moment, sees the old file
// or the new one whole.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "common/atomic_file.hpp"
#include "musespark/error.hpp"
#include "support.hpp"

using namespace musespark;
using namespace musespark::detail;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t files_in(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

TEST_CASE("atomic file: replaces the target whole, and leaves nothing beside it") {
  const fs::path dir = test_support::process_dir("atomic-file");
  const fs::path file = dir / "out.json";
  write_file_atomically(file, "old");
  CHECK(read_all(file) == "old");
  {
    AtomicFile out(file);
    out.write("new, ");
    CHECK(read_all(file) == "old");  // nothing shows before commit
    CHECK(files_in(dir) == 2);       // the target and the temporary
    out.write("whole");
    out.commit();
    CHECK_THROWS_AS(out.write("more"), Error);
  }
  CHECK(read_all(file) == "new, whole");
  CHECK(files_in(dir) == 1);

  {
    AtomicFile abandoned(file);
    abandoned.write("half");
  }  // destroyed without commit: the target is untouched, the temporary gone
  CHECK(read_all(file) == "new, whole");
  CHECK(files_in(dir) == 1);

  try {
    write_file_atomically(dir / "missing-folder" / "x.json", "x");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::io);
    CHECK(e.file() == (dir / "missing-folder" / "x.json").string());
    CHECK(e.message().find("cannot create") != std::string::npos);
  }

  std::ofstream(dir / "out.json.tmp-1-0") << "torn";
  std::ofstream(dir / "other.json.tmp-1-0") << "another file's";
  CHECK(remove_stale_temporaries(file) == 1);
  CHECK(fs::exists(dir / "other.json.tmp-1-0"));
  CHECK(read_all(file) == "new, whole");
}

TEST_CASE("atomic file: a writer killed at random moments never leaves a torn file") {
  const fs::path dir = test_support::process_dir("atomic-kill");
  const fs::path file = dir / "weights.bin";
  constexpr size_t kSize = 4 << 20;
  write_file_atomically(file, std::string(kSize, 'a'));
  for (int round = 0; round < 8; ++round) {
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Rewrites the file over and over, each time all one letter.
      std::string bytes(kSize, 'b');
      for (int i = 0;; ++i) {
        bytes.assign(kSize, static_cast<char>('b' + i % 20));
        AtomicFile out(file);
        for (size_t at = 0; at < kSize; at += 4096) out.write(bytes.data() + at, 4096);
        out.commit();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + 37 * round));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    const std::string now = read_all(file);
    REQUIRE(now.size() == kSize);
    CHECK(now.find_first_not_of(now[0]) == std::string::npos);
  }
  // What the killed writers left is only their temporaries, which are removed.
  remove_stale_temporaries(file);
  CHECK(files_in(dir) == 1);
}
