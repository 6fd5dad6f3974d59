/* fuzz/fuzz_yaml_config.c: the YAML run config (core/config.c through trainer/run_config.c):
 * defaults, the file, validation. Any input must give 0 or an ERR_* code, never a crash. */
#include "fuzz/fuzz_util.h"
#include "trainer/run_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static RunConfig rc;
    (void)run_config_load(&rc, fuzz_file(data, size), 0, NULL);
    return 0;
}
