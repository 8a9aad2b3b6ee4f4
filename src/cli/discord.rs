//! `paver discord …`: Discord application tools.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use paver::config::Config;

#[derive(Subcommand, Debug)]
pub enum DiscordCommand {
    /// Register the `/paver request:<text>` slash command (globally, or in one server).
    RegisterCommands {
        /// A server (guild) id: the command appears there at once.
        #[arg(long, value_name = "ID")]
        guild: Option<String>,
    },
}

pub fn run(config: &Config, command: DiscordCommand) -> anyhow::Result<ExitCode> {
    match command {
        DiscordCommand::RegisterCommands { guild } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let id = rt
                .block_on(paver::discord::commands::register(config, guild.as_deref()))
                .map_err(anyhow::Error::msg)?;
            match guild {
                Some(g) => println!("registered /paver in server {g} (command {id})"),
                None => println!(
                    "registered /paver globally (command {id}); it can take a while to show up everywhere"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
