/* lc_busy_drv (see there) with ERL_DRV_FLAG_SOFT_BUSY. */
#define LC_BUSY_NAME lc_busy_soft_drv
#define LC_BUSY_FLAGS ERL_DRV_FLAG_SOFT_BUSY
#include "lc_busy_drv.c"
