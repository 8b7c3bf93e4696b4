// Grounding and zoom tags in thinking text, and their pixel boxes.
#include <doctest/doctest.h>

#include <string>

#include "reasoning/visual.hpp"

using namespace musespark::detail;

TEST_CASE("visual: box and zoom tags are found once each, in order, with their coordinates") {
  const std::string text =
      "The digits are small. <box>(100,200),(300,400)</box> Let me look closer: "
      "<zoom>( 0 , 500 ),( 250.5,1000 )</zoom> done.";
  auto tags = find_visual_tags(text, 0);
  REQUIRE(tags.size() == 2);
  CHECK(tags[0].kind == VisualTag::Kind::box);
  CHECK(tags[0].relative == std::array<double, 4>{100, 200, 300, 400});
  CHECK(text.substr(tags[0].begin, tags[0].end - tags[0].begin) == "<box>(100,200),(300,400)</box>");
  CHECK(tags[1].kind == VisualTag::Kind::zoom);
  CHECK(tags[1].relative == std::array<double, 4>{0, 500, 250.5, 1000});
  // Asking again from the end of the first finds only the second.
  auto later = find_visual_tags(text, tags[0].end);
  REQUIRE(later.size() == 1);
  CHECK(later[0].kind == VisualTag::Kind::zoom);
  CHECK(find_visual_tags(text, tags[1].end).empty());
}

TEST_CASE("visual: incomplete and malformed tags are not actions") {
  CHECK(find_visual_tags("<zoom>(1,2),(3,4)", 0).empty());               // not closed yet
  CHECK(find_visual_tags("<box>(1,2),(3)</box>", 0).empty());            // three numbers
  CHECK(find_visual_tags("<box>(1,2),(3,4001)</box>", 0).empty());       // beyond 1000
  CHECK(find_visual_tags("<box>(-1,2),(3,4)</box>", 0).empty());         // negative
  CHECK(find_visual_tags("<box>(1,2),(3,4) extra</box>", 0).empty());    // trailing text
  // An unclosed tag followed by a good one: only the good one counts.
  auto tags = find_visual_tags("<box>(1,2) oops <box>(10,20),(30,40)</box>", 0);
  REQUIRE(tags.size() == 1);
  CHECK(tags[0].relative[0] == 10);
}

TEST_CASE("visual: relative coordinates become clamped, ordered pixel boxes") {
  CHECK(to_pixels({100, 200, 300, 400}, 640, 480) == std::array<int32_t, 4>{64, 96, 192, 192});
  CHECK(to_pixels({300, 400, 100, 200}, 640, 480) == std::array<int32_t, 4>{64, 96, 192, 192});  // corners swapped
  CHECK(to_pixels({0, 0, 1000, 1000}, 7, 5) == std::array<int32_t, 4>{0, 0, 7, 5});
  CHECK(to_pixels({500, 500, 500, 500}, 10, 10) == std::array<int32_t, 4>{5, 5, 6, 6});        // at least one pixel
  CHECK(to_pixels({1000, 1000, 1000, 1000}, 10, 10) == std::array<int32_t, 4>{9, 9, 10, 10});  // stays inside
  CHECK(to_pixels({333, 0, 334, 1000}, 3, 1) == std::array<int32_t, 4>{0, 0, 2, 1});
}
