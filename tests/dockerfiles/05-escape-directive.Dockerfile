# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
RUN powershell -Command `
    Write-Host hello
WORKDIR C:\app
COPY app.ps1 C:\app\
