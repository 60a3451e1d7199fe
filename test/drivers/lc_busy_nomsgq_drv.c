/* lc_busy_drv (see there) with ERL_DRV_FLAG_NO_BUSY_MSGQ. */
#define LC_BUSY_NAME lc_busy_nomsgq_drv
#define LC_BUSY_FLAGS ERL_DRV_FLAG_NO_BUSY_MSGQ
#include "lc_busy_drv.c"
