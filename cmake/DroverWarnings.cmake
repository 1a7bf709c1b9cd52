# drover_target_defaults(TARGET): the warning set every Drover target compiles with. Kept
# per target (no global flags) so generated protobuf code is not held to it.
#
# With DROVER_FUZZ (the `fuzz` preset, clang only) every Drover target is also instrumented
# for libFuzzer's coverage feedback and built with AddressSanitizer and
# UndefinedBehaviorSanitizer, so that a fuzz target finds bugs in the libraries it links,
# not only in itself. Undefined behaviour aborts (no recovery), so the fuzzer reports it.
function(drover_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
                         $<$<CONFIG:Debug>:-Werror>)
  if(DROVER_FUZZ)
    target_compile_options(${target} PRIVATE ${DROVER_SANITIZE_FLAGS} -fsanitize=fuzzer-no-link)
    target_link_options(${target} PRIVATE ${DROVER_SANITIZE_FLAGS})
  endif()
endfunction()
