// Where this process sits in a multi-process job, read from the variables a launcher sets:
// mii-launch, torchrun and the deepspeed launcher (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT) or Open MPI's mpirun (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE,
// OMPI_COMM_WORLD_LOCAL_RANK). A process started without a launcher is rank 0 of 1.
#pragma once
#include <chrono>
#include <string>

namespace mii::parallel {

struct launch_env {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;           // index of this process's GPU among the visible ones
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;      // where rank 0 serves the NCCL unique id (see rendezvous_port)
  std::string source = "none";  // which variables were read: "RANK/WORLD_SIZE", "OMPI", "none"
  bool launched() const { return source != "none"; }
};

// Reads the environment. Throws mii::error naming the variable and its value when one is not a
// number, out of range, or set without its partner (RANK without WORLD_SIZE).
launch_env read_launch_env();

// The port rank 0 listens on for the unique-id exchange: MII_RENDEZVOUS_PORT when set, else
// MASTER_PORT, except under torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True), which
// already holds MASTER_PORT: then MASTER_PORT + 1.
int rendezvous_port(const launch_env& env);

// How long ranks wait for each other while bootstrapping: MII_CONNECT_TIMEOUT seconds (a
// decimal number), default 60 s.
std::chrono::milliseconds connect_timeout();

// mii-launch hands each rank a channel (the variable below names its file descriptor, a Unix
// datagram socket) on which the rank says that it has joined the job; the launcher then reports
// ranks that never do: a program that is not tensor-parallel, or one stuck before its
// rendezvous. share_from_rank0 calls this once a rank has its peers. Without the variable
// (another launcher, no launcher) it does nothing; it never throws and never blocks.
inline constexpr const char* launcher_join_fd_variable = "MII_LAUNCH_JOIN_FD";
void tell_launcher_joined(int rank);

}  // namespace mii::parallel
