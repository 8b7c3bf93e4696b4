// musespark — version of the library.
#pragma once

#define MUSESPARK_VERSION_MAJOR 0
#define MUSESPARK_VERSION_MINOR 1
#define MUSESPARK_VERSION_PATCH 0
#define MUSESPARK_VERSION_STRING "0.1.0"
