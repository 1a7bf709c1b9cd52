# drover_link_statically(TARGET): links an executable's C++ dependencies from their static
# archives (Debian's -dev packages ship them beside the shared libraries): gRPC, protobuf,
# Abseil, OpenSSL, c-ares, re2, zlib, and libstdc++ itself. What it needs at run time is then
# libc and libm only, and the dynamic loader has next to nothing to do at start: the `drover`
# CLI, which runs once per command, loaded 57 shared libraries and spent about half of a
# short command's time in the loader (issue 18).
#
# How: the archives are put on the link line in one group right after the target's own
# libraries, so they resolve every symbol first; with --as-needed, the shared libraries that
# the imported targets still name are then not needed and not recorded. tests/cli checks the
# result (what the binary needs at run time).
function(drover_link_statically target)
  find_library(DROVER_STATIC_GRPCPP NAMES libgrpc++.a REQUIRED)
  get_filename_component(dir "${DROVER_STATIC_GRPCPP}" DIRECTORY)
  set(archives)
  foreach(name grpc++ grpc gpr upb address_sorting re2 cares protobuf ssl crypto z)
    if(NOT EXISTS "${dir}/lib${name}.a")
      message(FATAL_ERROR "${dir}/lib${name}.a is missing: the static CLI needs the static "
                          "archives of Debian's -dev packages (deploy/install-deps.sh), or "
                          "configure with -DDROVER_STATIC_CLI=OFF")
    endif()
    list(APPEND archives "${dir}/lib${name}.a")
  endforeach()
  # Every Abseil archive: only the members something uses are linked.
  file(GLOB absl_archives "${dir}/libabsl_*.a")
  list(APPEND archives ${absl_archives})
  # Not position-independent: a PIE this size spends most of its start relocating itself.
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  target_link_options(${target} PRIVATE -no-pie -Wl,--as-needed -static-libstdc++ -static-libgcc)
  target_link_libraries(${target} PRIVATE -Wl,--start-group ${archives} -Wl,--end-group
                        Threads::Threads ${CMAKE_DL_LIBS})
endfunction()
