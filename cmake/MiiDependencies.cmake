# Finds what mii builds against. Everything comes from Debian 12 packages (tools/install-deps.sh)
# or, on machines without them, from a prefix given in CMAKE_PREFIX_PATH (the GPU machine gets
# the same Debian files unpacked under .deps/, see tools/gpu/stage-deps.sh).
# Each dependency becomes one imported target named mii::<name> so the rest of the build does
# not care how it was found.

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)          # Boost.Hana is header-only (Boost::headers)

function(mii_find_header_library name header library)
  find_path(MII_${name}_INCLUDE_DIR ${header} REQUIRED)
  add_library(mii::${name} INTERFACE IMPORTED GLOBAL)
  target_include_directories(mii::${name} SYSTEM INTERFACE ${MII_${name}_INCLUDE_DIR})
  if(library)
    find_library(MII_${name}_LIBRARY NAMES ${library} REQUIRED)
    target_link_libraries(mii::${name} INTERFACE ${MII_${name}_LIBRARY})
  endif()
  message(STATUS "mii: ${name}: ${MII_${name}_INCLUDE_DIR} ${MII_${name}_LIBRARY}")
endfunction()

# range-v3 is header-only and does not compile under nvcc 13: host translation units only.
mii_find_header_library(range-v3 range/v3/all.hpp "")
# simdjson: the fastest DOM parser in Debian for the 9-11 MB tokenizer.json files (docs/dependencies.md).
mii_find_header_library(simdjson simdjson.h simdjson)
# PCRE2 with JIT: the pre-tokenizer regexes need \p{L}, \p{N} and lookahead.
mii_find_header_library(pcre2 pcre2.h pcre2-8)
target_compile_definitions(mii::pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8)
# utf8proc: Unicode NFC/NFKC normalization and character categories.
mii_find_header_library(utf8proc utf8proc.h utf8proc)

# libcurl (Debian libcurl4-openssl-dev): downloads for Hub ids (src/io/hub_http.cpp). AUTO uses it
# when found; without it a Hub id resolves from the Hugging Face cache only (docs/hub.md).
set(MII_WITH_CURL "AUTO" CACHE STRING "Download Hub ids with libcurl: AUTO (when found), ON, OFF")
set_property(CACHE MII_WITH_CURL PROPERTY STRINGS AUTO ON OFF)
add_library(mii::curl INTERFACE IMPORTED GLOBAL)
set(MII_CURL_ENABLED OFF)
if(NOT MII_WITH_CURL STREQUAL "OFF")
  if(MII_WITH_CURL STREQUAL "ON")
    find_package(CURL REQUIRED)
  else()
    find_package(CURL QUIET)
  endif()
  if(CURL_FOUND)
    set(MII_CURL_ENABLED ON)
    target_link_libraries(mii::curl INTERFACE CURL::libcurl)
    message(STATUS "mii: libcurl ${CURL_VERSION_STRING}: Hub ids download what the cache lacks")
  else()
    message(STATUS "mii: no libcurl (apt-get install libcurl4-openssl-dev): Hub ids resolve from the cache only")
  endif()
endif()
target_compile_definitions(mii::curl INTERFACE MII_HAVE_CURL=$<BOOL:${MII_CURL_ENABLED}>)

if(MII_BUILD_TESTS OR MII_BUILD_BENCH)
  # Catch2 v2 (Debian's catch2 2.13): one header; found by path so a Catch2 v3 install elsewhere
  # on the machine cannot be picked up by mistake.
  find_path(MII_CATCH2_INCLUDE_DIR catch2/catch.hpp REQUIRED)
  add_library(mii::catch2 INTERFACE IMPORTED GLOBAL)
  target_include_directories(mii::catch2 SYSTEM INTERFACE ${MII_CATCH2_INCLUDE_DIR})
endif()

# ---- CUDA ----------------------------------------------------------------------------------
set(MII_CUDA_ENABLED OFF)
if(NOT MII_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES 90a CACHE STRING "CUDA architectures" FORCE)
    endif()
    enable_language(CUDA)
    # CMake 3.25 does not know nvcc's C++20 flag (it learned it in 3.26); tell it.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    find_path(MII_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
    find_library(MII_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
    add_library(mii::nccl INTERFACE IMPORTED GLOBAL)
    target_include_directories(mii::nccl SYSTEM INTERFACE ${MII_NCCL_INCLUDE_DIR})
    target_link_libraries(mii::nccl INTERFACE ${MII_NCCL_LIBRARY})
    set(MII_CUDA_ENABLED ON)
    message(STATUS "mii: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(MII_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "mii: MII_WITH_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "mii: no nvcc found: building the host backend only")
  endif()
endif()
